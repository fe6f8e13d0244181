// agentgw's web UI: one page, a view per hash route (#/overview, #/mcp, ...), each view
// a small component of its own in views/. Everything it shows comes from the admin API
// (/api/v1/) of the gateway serving it; the playgrounds reach the gateway's routes
// through the admin listener's relay, so the browser never needs CORS on a route.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { api, credentialFor, onUnauthorized, setCredential, credential } from "./api.js";
import Overview from "./views/overview.jsx";
import Mcp from "./views/mcp.jsx";
import A2a from "./views/a2a.jsx";
import Llm from "./views/llm.jsx";
import Cel from "./views/cel.jsx";
import ConfigEditor from "./views/config.jsx";
import Requests from "./views/requests.jsx";

export const VIEWS = [
  { id: "overview", title: "Overview", View: Overview },
  { id: "mcp", title: "MCP", View: Mcp },
  { id: "a2a", title: "A2A", View: A2a },
  { id: "llm", title: "LLM", View: Llm },
  { id: "cel", title: "CEL", View: Cel },
  { id: "config", title: "Config", View: ConfigEditor },
  { id: "requests", title: "Requests", View: Requests },
];

function currentView() {
  const id = location.hash.replace(/^#\/?/, "").split("/")[0];
  return VIEWS.find((v) => v.id === id) || VIEWS[0];
}

function Login({ reason, onDone }) {
  const [token, setToken] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  async function submit(e) {
    e.preventDefault();
    const value = credentialFor({ token, username, password });
    if (!value) return setError("Enter the admin token, or a user name and password.");
    setCredential(value);
    try {
      await api("whoami");
      onDone();
    } catch (err) {
      setCredential("");
      setError(err.message);
    }
  }
  return (
    <div class="modal" role="dialog" aria-modal="true" aria-labelledby="login-title">
      <form class="card login" onSubmit={submit}>
        <h2 id="login-title">Sign in to the admin API</h2>
        {reason && <p class="muted">{reason}</p>}
        <label>
          Admin token <span class="muted">(config.admin.token)</span>
          <input type="password" autocomplete="off" value={token} onInput={(e) => setToken(e.target.value)} autofocus />
        </label>
        <p class="muted">or user name and password (config.admin.basicAuth)</p>
        <label>
          User name
          <input autocomplete="username" value={username} onInput={(e) => setUsername(e.target.value)} />
        </label>
        <label>
          Password
          <input type="password" autocomplete="current-password" value={password} onInput={(e) => setPassword(e.target.value)} />
        </label>
        {error && <p class="error" role="alert">{error}</p>}
        <div class="row">
          <button type="submit">Sign in</button>
          <button type="button" class="secondary" onClick={onDone}>Cancel</button>
        </div>
      </form>
    </div>
  );
}

function App() {
  const [view, setView] = useState(currentView());
  const [login, setLogin] = useState(null);
  const [signedIn, setSignedIn] = useState(!!credential());
  useEffect(() => {
    const onHash = () => setView(currentView());
    addEventListener("hashchange", onHash);
    const off = onUnauthorized((why) => setLogin(why || "This action needs the admin credential."));
    return () => {
      removeEventListener("hashchange", onHash);
      off();
    };
  }, []);
  useEffect(() => {
    document.title = `${view.title} · agentgw`;
  }, [view]);
  const { View } = view;
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">agentgw</span>
        <nav aria-label="Views">
          {VIEWS.map((v) => (
            <a href={`#/${v.id}`} aria-current={v.id === view.id ? "page" : undefined}>
              {v.title}
            </a>
          ))}
        </nav>
        <span class="grow" />
        {signedIn ? (
          <button
            class="secondary small"
            onClick={() => {
              setCredential("");
              setSignedIn(false);
            }}
          >
            Sign out
          </button>
        ) : (
          <button class="secondary small" onClick={() => setLogin("")}>
            Sign in
          </button>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        <View key={view.id} />
      </main>
      {login !== null && (
        <Login
          reason={login}
          onDone={() => {
            setLogin(null);
            setSignedIn(!!credential());
          }}
        />
      )}
    </>
  );
}

render(<App />, document.getElementById("app"));
