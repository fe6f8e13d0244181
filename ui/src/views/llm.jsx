export default function View() {
  return <h1>llm</h1>;
}
