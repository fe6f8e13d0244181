export default function View() {
  return <h1>cel</h1>;
}
