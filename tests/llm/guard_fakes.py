"""Stand-ins for the managed guardrail services, checking requests as each documents them.

    python -m tests.llm.guard_fakes --port N

* AWS Bedrock ApplyGuardrail: ``POST /guardrail/{id}/version/{version}/apply``,
  ``content-type`` and ``accept`` JSON, a SigV4 signature (service ``bedrock``) that
  verifies, a body ``{"source": "INPUT"|"OUTPUT", "content": [{"text": {"text"}}]}``.
  A text with ``blockme`` is BLOCKED; one with ``@`` is ANONYMIZED (each address
  becomes ``{EMAIL}``, one output per block); anything else: ``NONE``.
* Google Model Armor: ``POST /v1/projects/{p}/locations/{l}/templates/{t}:sanitizeUserPrompt``
  (``{"userPromptData": {"text"}}``) and ``:sanitizeModelResponse``
  (``{"modelResponseData": {"text"}}``), ``authorization: Bearer`` the test token; a text
  with ``blockme`` finds a match (``MATCH_FOUND`` in a RAI filter result).
* Azure AI Content Safety: ``POST /contentsafety/text:analyze?api-version=2024-09-01``
  (``{"text", "blocklistNames"?, "haltOnBlocklistHit"?}``; ``hateful`` scores Hate 4,
  ``grumpy`` scores Hate 2, ``meh`` Violence 1; a blocklisted word ``zorp`` matches when
  a blocklist is named) and ``text:detectJailbreak?api-version=2024-02-15-preview``
  (``{"text"}``; ``ignore previous instructions`` is detected). Authorized by
  ``ocp-apim-subscription-key`` (the test key) or ``authorization: Bearer`` the token
  from the Azure AD fake: ``POST /{tenant}/oauth2/v2.0/token`` (client credentials).

``GET /_log`` lists every request (path, headers, body, validation error);
``POST /_reset`` clears it.
"""

from __future__ import annotations

import argparse
import json
import re
from urllib.parse import parse_qs

from aiohttp import web

from tests.llm.fakes import AWS_KEY_ID, AWS_REGION, AWS_SECRET

GCP_TOKEN = "ya29.model-armor-test"
AZURE_KEY = "content-safety-test-key"
AZURE_TENANT = "tenant-1"
AZURE_CLIENT = "client-1"
AZURE_SECRET = "client-secret-1"
AZURE_TOKEN = "eyJ.azure-ad-test"
LOG: list[dict] = []
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class Invalid(Exception):
    pass


def need(cond, msg: str) -> None:
    if not cond:
        raise Invalid(msg)


def verify_sigv4(request: web.Request, raw: bytes) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = request.headers.get("authorization", "")
    need(auth.startswith("AWS4-HMAC-SHA256 "), "authorization: SigV4 required")
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    cred = parts.get("Credential", "").split("/")
    need(
        len(cred) == 5 and cred[0] == AWS_KEY_ID and cred[2] == AWS_REGION and cred[3] == "bedrock",
        f"authorization: bad credential scope {parts.get('Credential')}",
    )
    amz_date = request.headers.get("x-amz-date")
    need(amz_date and amz_date.startswith(cred[1]), "x-amz-date: required, matching the scope date")
    signed = parts["SignedHeaders"].split(";")
    need("host" in signed and "x-amz-date" in signed, "SignedHeaders: host and x-amz-date required")
    url = f"http://{request.headers['host']}{request.raw_path}"
    areq = AWSRequest(
        method=request.method,
        url=url,
        data=raw,
        headers={h: request.headers[h] for h in signed if h in request.headers},
    )
    areq.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(AWS_KEY_ID, AWS_SECRET), "bedrock", AWS_REGION)
    expect = signer.signature(signer.string_to_sign(areq, signer.canonical_request(areq)), areq)
    need(expect == parts.get("Signature"), "authorization: SigV4 signature does not verify")


def json_body(request: web.Request, raw: bytes) -> dict:
    need(request.headers.get("content-type", "").startswith("application/json"), "content-type: application/json")
    body = json.loads(raw)
    need(isinstance(body, dict), "body: a JSON object")
    return body


async def bedrock_apply(request: web.Request, raw: bytes):
    need(request.headers.get("accept") == "application/json", "accept: application/json required")
    verify_sigv4(request, raw)
    body = json_body(request, raw)
    need(set(body) == {"source", "content"}, f"body keys: {sorted(body)}")
    need(body["source"] in ("INPUT", "OUTPUT"), "source: INPUT or OUTPUT")
    texts = []
    for blk in body["content"]:
        need(set(blk) == {"text"} and set(blk["text"]) == {"text"}, "content[]: {text: {text}}")
        need(isinstance(blk["text"]["text"], str), "content[].text.text: a string")
        texts.append(blk["text"]["text"])
    usage = {"topicPolicyUnits": 1, "contentPolicyUnits": 1}
    if any("blockme" in t for t in texts):
        return web.json_response(
            {
                "action": "GUARDRAIL_INTERVENED",
                "outputs": [{"text": "Sorry, the model cannot answer this question."}],
                "assessments": [
                    {"topicPolicy": {"topics": [{"name": "blocked", "type": "DENY", "action": "BLOCKED"}]}}
                ],
                "usage": usage,
            }
        )
    if any(_EMAIL.search(t) for t in texts):
        return web.json_response(
            {
                "action": "GUARDRAIL_INTERVENED",
                "outputs": [{"text": _EMAIL.sub("{EMAIL}", t)} for t in texts],
                "assessments": [
                    {"sensitiveInformationPolicy": {"piiEntities": [{"type": "EMAIL", "action": "ANONYMIZED"}]}}
                ],
                "usage": usage,
            }
        )
    return web.json_response({"action": "NONE", "outputs": [], "assessments": [], "usage": usage})


async def model_armor(request: web.Request, raw: bytes):
    need(request.headers.get("authorization") == f"Bearer {GCP_TOKEN}", "authorization: Bearer token required")
    body = json_body(request, raw)
    op = request.match_info["op"]
    if op == "sanitizeUserPrompt":
        need(set(body) == {"userPromptData"}, f"body keys: {sorted(body)}")
        text = body["userPromptData"]["text"]
    else:
        need(op == "sanitizeModelResponse", f"unknown method {op}")
        need(set(body) == {"modelResponseData"}, f"body keys: {sorted(body)}")
        text = body["modelResponseData"]["text"]
    need(isinstance(text, str), "text: a string")
    state = "MATCH_FOUND" if "blockme" in text else "NO_MATCH_FOUND"
    return web.json_response(
        {
            "sanitizationResult": {
                "filterMatchState": state,
                "filterResults": {
                    "rai": {"raiFilterResult": {"executionState": "EXECUTION_SUCCESS", "matchState": state}},
                    "csam": {"csamFilterFilterResult": {"matchState": "NO_MATCH_FOUND"}},
                },
                "invocationResult": "SUCCESS",
            }
        }
    )


def _azure_auth(request: web.Request) -> None:
    key = request.headers.get("ocp-apim-subscription-key")
    bearer = request.headers.get("authorization")
    need(key == AZURE_KEY or bearer == f"Bearer {AZURE_TOKEN}", "ocp-apim-subscription-key or a bearer token required")


async def content_safety(request: web.Request, raw: bytes):
    _azure_auth(request)
    body = json_body(request, raw)
    op = request.match_info["op"]
    version = request.query.get("api-version")
    if op == "analyze":
        need(version == "2024-09-01", f"api-version: {version}")
        need(set(body) <= {"text", "categories", "blocklistNames", "haltOnBlocklistHit", "outputType"}, "body keys")
        text = body["text"]
        need(isinstance(text, str) and len(text) <= 10000, "text: a string of at most 10000 characters")
        sev = {"Hate": 0, "SelfHarm": 0, "Sexual": 0, "Violence": 0}
        if "hateful" in text:
            sev["Hate"] = 4
        elif "grumpy" in text:
            sev["Hate"] = 2
        if "meh" in text:
            sev["Violence"] = 1
        matches = []
        if "zorp" in text and body.get("blocklistNames"):
            matches.append(
                {"blocklistName": body["blocklistNames"][0], "blocklistItemId": "1", "blocklistItemText": "zorp"}
            )
        return web.json_response(
            {
                "blocklistsMatch": matches,
                "categoriesAnalysis": [{"category": k, "severity": v} for k, v in sev.items()],
            }
        )
    need(op == "detectJailbreak", f"unknown operation {op}")
    need(version == "2024-02-15-preview", f"api-version: {version}")
    need(set(body) == {"text"} and isinstance(body["text"], str), "body: {text}")
    return web.json_response({"jailbreakAnalysis": {"detected": "ignore previous instructions" in body["text"]}})


async def azure_token(request: web.Request, raw: bytes):
    need(request.match_info["tenant"] == AZURE_TENANT, "tenant")
    need(request.headers.get("content-type") == "application/x-www-form-urlencoded", "content-type: form")
    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    need(form.get("grant_type") == "client_credentials", "grant_type")
    need(form.get("client_id") == AZURE_CLIENT and form.get("client_secret") == AZURE_SECRET, "client credentials")
    need(form.get("scope") == "https://cognitiveservices.azure.com/.default", f"scope: {form.get('scope')}")
    return web.json_response(
        {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": AZURE_TOKEN}
    )


def logged(handler, kind: str):
    async def wrapped(request: web.Request):
        raw = await request.read()
        entry = {
            "kind": kind,
            "path": request.path_qs,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": raw.decode("utf-8", "replace"),
            "error": None,
        }
        LOG.append(entry)
        try:
            return await handler(request, raw)
        except (Invalid, ValueError, KeyError, TypeError) as exc:
            entry["error"] = str(exc)
            return web.json_response({"error": {"code": "InvalidRequest", "message": str(exc)}}, status=400)

    return wrapped


async def get_log(request):
    return web.json_response(LOG)


async def reset(request):
    LOG.clear()
    return web.json_response({})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/_log", get_log)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/guardrail/{id}/version/{version}/apply", logged(bedrock_apply, "bedrock"))
    app.router.add_post(
        "/v1/projects/{project}/locations/{location}/templates/{template}:{op}", logged(model_armor, "armor")
    )
    app.router.add_post("/contentsafety/text:{op}", logged(content_safety, "azure"))
    app.router.add_post("/{tenant}/oauth2/v2.0/token", logged(azure_token, "azure-token"))
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
