// An OpenID provider for the browser-login (`oidc` policy) tests: oidc-provider (a
// certified OpenID provider) with one confidential client (client_secret_basic), PKCE,
// and the profile and email claims in the ID token.
//
// Its login and consent pages are replaced by an interaction that signs in the account
// named by the `login_hint` parameter (default "testuser") and grants what the client
// asked for, so a test follows the redirects of a browser login with a plain HTTP client.
//
// usage: OIDC_PROVIDER_MODULE=<path to oidc-provider's lib/index.js> \
//        node oidc_login_server.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
// prints "ready <issuer>" on stdout when it accepts connections.
import http from "node:http";
import { generateKeyPairSync } from "node:crypto";
import { pathToFileURL } from "node:url";

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "login-key", use: "sig", alg: "RS256" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [jwk] },
  scopes: ["openid", "profile", "email"],
  claims: { openid: ["sub"], profile: ["name"], email: ["email", "email_verified"] },
  conformIdTokenClaims: false, // the scopes' claims in the ID token itself
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
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
    result = { login: { accountId: params.login_hint || "testuser" } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
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
server.listen(Number(port), "127.0.0.1", () => console.log(`ready ${issuer}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
