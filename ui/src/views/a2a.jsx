export default function View() {
  return <h1>a2a</h1>;
}
