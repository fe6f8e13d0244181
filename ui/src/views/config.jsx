export default function View() {
  return <h1>config</h1>;
}
