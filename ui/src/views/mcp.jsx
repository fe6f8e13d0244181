export default function View() {
  return <h1>mcp</h1>;
}
