// A real OAuth 2.1 / OpenID provider for the tests: oidc-provider (a certified OpenID
// provider) with PKCE, and, as a test asks, static clients, dynamic client registration
// and RFC 8707 resource indicators (JWT access tokens whose audience is the resource).
//
// The login and consent pages are replaced by an interaction that signs in the account
// named by the `login_hint` parameter (default: the config's `account`) and grants what
// the client asked for, so a test follows the redirects of a browser login with a plain
// HTTP client.
//
// usage: OIDC_PROVIDER_MODULE=<path to oidc-provider's lib/index.js> \
//        node oidc_server.mjs PORT CONFIG_JSON
// CONFIG_JSON: {clients: [...], scopes: [...], claims: {...}, registration: bool,
//               resourceIndicators: bool, audience: "fixed-aud", routes: {...},
//               account: "alice"}   (see tests/support/oidc.py)
// prints "ready <issuer>" on stdout when it accepts connections.
import http from "node:http";
import { generateKeyPairSync } from "node:crypto";
import { pathToFileURL } from "node:url";

// the package lives in the project's npm cache (.cache/npm), not beside this script
const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);

const port = Number(process.argv[2]);
const cfg = JSON.parse(process.argv[3] || "{}");
const issuer = `http://127.0.0.1:${port}`;
const account = cfg.account || "alice";

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-key", use: "sig", alg: "RS256" };

const features = { devInteractions: { enabled: false } };
if (cfg.registration) features.registration = { enabled: true };
if (cfg.resourceIndicators) {
  features.resourceIndicators = {
    enabled: true,
    defaultResource: () => undefined,
    useGrantedResource: () => true,
    getResourceServerInfo: (ctx, resource) => ({
      scope: (cfg.scopes || []).filter((s) => s !== "openid").join(" "),
      audience: cfg.audience || resource, // a fixed audience, as Keycloak without RFC 8707 sets
      accessTokenTTL: 600,
      accessTokenFormat: "jwt",
      jwt: { sign: { alg: "RS256" } },
    }),
  };
}

const provider = new Provider(issuer, {
  clients: cfg.clients || [],
  jwks: { keys: [jwk] },
  scopes: cfg.scopes || ["openid"],
  claims: cfg.claims || { openid: ["sub"] },
  conformIdTokenClaims: false, // the scopes' claims in the ID token itself
  pkce: { required: () => true },
  clientDefaults: {
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "none",
  },
  features,
  ...(cfg.routes ? { routes: cfg.routes } : {}), // e.g. Keycloak's registration path
  findAccount: (ctx, sub) => ({
    accountId: sub,
    claims: () => ({ sub, name: `User ${sub}`, email: `${sub}@example.com`, email_verified: true }),
  }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});
provider.proxy = false;

async function interact(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === "login") {
    result = { login: { accountId: params.login_hint || account } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [resource, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(resource, scopes.join(" "));
      }
    }
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith("/interaction/")) {
    interact(req, res).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
    return;
  }
  callback(req, res);
});
server.listen(port, "127.0.0.1", () => console.log(`ready ${issuer}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
