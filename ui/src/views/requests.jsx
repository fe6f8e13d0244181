export default function View() {
  return <h1>requests</h1>;
}
