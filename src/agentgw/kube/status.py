"""Status conditions: how each translation step says what it accepted, and the error lines
that a ``False`` condition becomes for the CLI and the controller's log.
"""

from __future__ import annotations

from .objects import display

MAX_PROBLEMS = 10


def cond(type_: str, ok: bool, reason: str, message: str, gen: int) -> dict:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
    }


def problems_message(problems: list[str]) -> str:
    """The problems as one condition message: duplicates once, at most `MAX_PROBLEMS`."""
    ps = list(dict.fromkeys(problems))
    if len(ps) > MAX_PROBLEMS:
        return "; ".join(ps[:MAX_PROBLEMS]) + f"; and {len(ps) - MAX_PROBLEMS} more"
    return "; ".join(ps)


def errors_from_status(status: dict[tuple[str, str, str, str], dict]) -> list[str]:
    """One line per condition that says something is wrong (objects, listeners, route parents)."""
    errors = []
    for k, st in sorted(status.items()):
        for c in st.get("conditions") or []:
            if (
                c["type"] in ("Accepted", "ResolvedRefs", "Programmed")
                and c["status"] == "False"
                and c["type"] != "Programmed"
            ):
                errors.append(f"{display(k)}: {c['type']}={c['reason']}: {c['message']}")
        for gl in st.get("listeners") or []:
            for c in gl["conditions"]:
                bad = (c["type"] == "Conflicted" and c["status"] == "True") or (
                    c["type"] in ("Accepted", "ResolvedRefs") and c["status"] == "False"
                )
                if bad:
                    errors.append(f"{display(k)}: listener {gl['name']}: {c['type']}={c['reason']}: {c['message']}")
        for p in st.get("parents") or []:
            for c in p["conditions"]:
                if c["status"] == "False":
                    errors.append(
                        f"{display(k)}: parent {p['parentRef']['namespace']}/{p['parentRef']['name']}: {c['type']}={c['reason']}: {c['message']}"
                    )
    return errors
