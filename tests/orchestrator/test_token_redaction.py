"""Tokens never reach what every session reads: the relayed log, report text, run evidence, the audit trail.

A worker that runs ``env`` in a failing command puts its ``COORD_TOKEN`` into
a tool result; the host wrote it into the human log as a ``[tool-error]``
line and the hub served it to every session, who could then act as the
worker (review of the orchestrator, fault r1).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordhub.core import tokens
from coordhub.core.redaction import MIN_COORD, MIN_GITHUB, redact, redact_after
from coordhub.orchestrator.streamjson import Parser
from tests.conftest import Api
from tests.orchestrator.conftest import ORCH, Host, apply_config, assign, config, get
from tests.orchestrator.test_pipeline import PIPE, next_run, report_run, work_done

GHP = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"
PAT = "github_pat_11ABCDEFG0" + "x1Y2z3" * 12


def _tool_error(text: str) -> bytes:
    event = {"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": text}]}}
    return (json.dumps(event) + "\n").encode()


def test_redact_masks_every_token_shape_and_keeps_the_length() -> None:
    key = bytes(32)
    tagged = tokens.PREFIX + "Zq9" + "x" * 40
    tagged += "." + tokens._tag(key, tagged)
    untagged = "coord_" + "Ab1-_" * 8 + "xyz"
    for secret in (tagged, untagged, untagged[:6 + 32], GHP, "gho_" + GHP[4:], PAT):
        text = f"COORD_TOKEN={secret}\nnext line"
        out = redact(text)
        assert len(out) == len(text) and secret not in out and out.endswith("\nnext line"), secret
        assert out.startswith("COORD_TOKEN=" + secret.split("_")[0] + "_")  # the kind of secret stays visible
    # names are not tokens: no digit or capital, or too short
    for text in ("coord_settings_from_the_environment_file", "coord_token_tag_key", "ghp_short1"):
        assert redact(text) == text
    assert redact("the token is s3cret-value!", ["s3cret-value"]) == "the token is ************!"


def test_names_that_start_like_a_token_are_left_alone() -> None:
    """Coordhub's own tests, modules and reasons are full of ``coord_`` names; they are not tokens (review r3)."""
    for text in ("def test_coord_HubStatusReadsOffLoop():", "tests/test_coord_api_v2_conflicts_endpoint.py",
                 "import coord_Client2Settings_module_x", "laughs_Count_2024_annual_report_final",
                 "FAILED tests/test_x.py::test_coord_Api2ConflictsEndpointReturns409ForStaleIncarnations",
                 "see mythoughs_Xy12Zq34Wv56Ut78Sr90Pq12 and ghp_Some_Name_2024_with_parts_and_more_parts",
                 "coord_settings_from_the_environment_file_and_the_defaults"):
        assert redact(text) == text, text
        assert redact_after("the stored end ", text) == text and redact_after("", text) == text


def test_real_tokens_whole_cut_or_escaped_are_masked() -> None:
    key = bytes(32)
    body = "Zq9" + "x-_Y" * 10  # 43 characters
    untagged = tokens.PREFIX + body
    tagged = untagged + "." + tokens._tag(key, untagged)
    cuts = [untagged[:6 + n] for n in range(MIN_COORD, 44)] + [GHP[:4 + n] for n in range(MIN_GITHUB, 37)]
    for secret in (tagged, untagged, tagged[:-5], GHP, "ghs_" + GHP[4:], "ghr_" + GHP[4:], PAT, *cuts):
        prefix = secret[:secret.index("_") + 1] if not secret.startswith("github_pat_") else "github_pat_"
        for text in (f"X={secret} y", f"{secret}", f'"{secret}"', f"url?token={secret}&x=1"):
            assert redact(text) == text.replace(secret, prefix + "*" * (len(secret) - len(prefix))), text
    # where a token follows an escape that ends in a letter or digit: JSON, a repr, a URL, a terminal colour
    for text in (json.dumps({"output": f"FAILED\n{tagged}\tx", "e": f"\u00e9{GHP}"}), repr(f"a\n{untagged}"),
                 f"token%3D{untagged}", f"\x1b[1m{GHP}\x1b[0m", f"\x1b[31;1m{tagged}"):
        out = redact(text)
        assert len(out) == len(text) and body[:8] not in out and GHP[4:12] not in out, text


@pytest.mark.parametrize("cut", [-4, 0, 5, 20, 25, 31, 32, 40, 43, 44, 50, 66])
def test_a_token_cut_between_two_chunks_is_masked_whole(cut: int) -> None:
    """``cut``: where the chunk boundary falls, counted from the token's body (-4: inside ``coord_``)."""
    token = "coord_" + "Ab3-_" * 8 + "Cd9" + ".AbCdEfGhIjKlMnOpQrStUv"
    line = f"02:50:00 [tool-error] env: COORD_TOKEN={token} HOME=/root\n"
    at = line.index(token) + 6 + cut
    first = redact(line[:at])
    second = redact_after(first, line[at:])
    masked = line.replace(token, "coord_" + "*" * (len(token) - 6))
    assert second == masked[at:]  # the rest is masked in the chunk that holds it
    assert redact_after("", first + line[at:]) == masked  # and read back from a chunk stored unmasked


def test_the_stream_parser_masks_the_workers_token_before_the_human_log() -> None:
    token = "coord_" + "Qw3" * 14 + "z.abcdefghijklmnopqrstuv"
    odd = "not-token-shaped-but-secret"  # the attempt's own token, whatever its shape
    lines = Parser(secrets=[odd]).feed(_tool_error(f"Exit code 1\nCOORD_TOKEN={token}\nX={odd}\nGH={GHP}"))
    (line,) = lines
    assert line.startswith("[tool-error] Exit code 1 COORD_TOKEN=coord_***")
    assert token[6:20] not in line and odd not in line and GHP[4:] not in line
    parser = Parser(secrets=[token])
    text = {"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": f"STATUS: {token}"}]}}
    assert parser.feed((json.dumps(text) + "\n").encode()) == ["[status] " + "*" * len(token)]
    assert token not in json.dumps(parser.telemetry.snapshot())


def test_hub_masks_tokens_in_the_log_and_report_text(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    a = assign(orch, user, issue=5, machine="laptop")
    job = laptop.next()
    assert job is not None and job["worker_token"].startswith("coord_")
    token = job["worker_token"]
    text = f"02:50:00 [tool-error] Exit code 1 COORD_TOKEN={token} GH_TOKEN={GHP}\n02:50:01 [tool] Read a.py\n"
    r = orch.post(f"{ORCH}/assignments/{a['id']}/log", headers=laptop.headers,
                  json={"attempt": 1, "offset": 0, "text": text})
    assert r.json() == {"size": len(text)}  # masking keeps the length: the host's offsets hold
    again = orch.post(f"{ORCH}/assignments/{a['id']}/log", headers=laptop.headers,  # a retry adds only what is new
                      json={"attempt": 1, "offset": 0, "text": text + "02:50:02 [tool] Edit b.py\n"})
    assert again.json() == {"size": len(text) + 26}
    other = orch.token("mallory/claude-main")
    got = orch.get(f"{ORCH}/assignments/{a['id']}/log", headers=other, params={"offset": 0}).json()
    assert token not in got["text"] and GHP not in got["text"] and got["text"].endswith("[tool] Edit b.py\n")
    assert got["text"].count("\n") == 3 and "COORD_TOKEN=coord_*****" in got["text"]
    part = orch.get(f"{ORCH}/assignments/{a['id']}/log", headers=other, params={"offset": 60}).json()
    assert token[60 - 45:] not in part["text"]  # a read that starts inside a token shows none of it
    laptop.report(job, "running", telemetry={"status_line": f"debugging {token}", "progress": f"env: {token}",
                                             "last_file": f"/tmp/{GHP}"}, freshness=[f"lib: {token}"])
    laptop.report(job, "failed", reason=f"the command printed COORD_TOKEN={token}")
    seen = json.dumps(get(orch, a["id"]))
    assert token not in seen and GHP not in seen and "COORD_TOKEN=coord_***" in seen
    events = orch.get("/api/coord/audit", headers=orch.admin, params={"limit": 500})
    assert events.status_code == 200 and a["id"] in events.text and token not in events.text
    orch.post(f"{ORCH}/notify", headers=user)
    r = orch.get(f"{ORCH}/assignments/{a['id']}/trail", headers=other)
    assert r.status_code == 200 and any(p["event"] == "failure" for p in r.json()["posts"]) and token not in r.text


def test_a_token_cut_between_two_relayed_log_chunks_is_masked_in_the_log(orch: Api, laptop: Host,
                                                                         user: dict[str, str]) -> None:
    """The host cuts its log into chunks anywhere; the hub masked each chunk alone, so a token cut 20 or more
    characters into its body had its rest stored and served in clear (review r3)."""
    a = assign(orch, user, issue=6, machine="laptop")
    job = laptop.next()
    assert job is not None
    url = f"{ORCH}/assignments/{a['id']}/log"
    token = job["worker_token"]
    assert len(token) == 6 + 43 + 1 + tokens.TAG_CHARS
    other = orch.token("mallory/claude-main")
    size = 0
    for cut in (-3, 0, 10, 20, 25, 31, 32, 40, 43, 44, 55, 65):
        line = f"02:50:00 [tool-error] env: COORD_TOKEN={token} HOME=/root\n"
        at = line.index(token) + 6 + cut
        for part in (line[:at], line[at:]):
            r = orch.post(url, headers=laptop.headers, json={"attempt": 1, "offset": size, "text": part})
            assert r.status_code == 200 and r.json() == {"size": size + len(part)}, r.text
            size += len(part)
        boundary = size - len(line) + at
        whole = orch.get(url, headers=other, params={"offset": size - len(line)}).json()["text"]
        assert whole == line.replace(token, "coord_" + "*" * (len(token) - 6)), cut
        rest = orch.get(url, headers=other, params={"offset": boundary}).json()["text"]  # a read from the cut
        assert rest == whole[at:], cut
    got = orch.get(url, headers=other, params={"offset": 0}).json()["text"]
    assert token[6 + 10:6 + 20] not in got and token[-20:] not in got and got.count("HOME=/root") == 12


def test_hub_masks_tokens_in_run_evidence(orch: Api, laptop: Host, user: dict[str, str]) -> None:
    apply_config(orch, PIPE)
    a = work_done(laptop, orch, user)
    run = next_run(laptop)
    assert run is not None and run["stage"] == "test"
    token = tokens.PREFIX + "Zz9" * 14 + "y"
    got: dict[str, Any] = report_run(laptop, run, state="done", exit_code=1, reason=f"env had {token}",
                                     output_tail=f"FAILED\nCOORD_TOKEN={token}\nGH_TOKEN={GHP}")
    assert got["state"] == "failed"
    for text in (json.dumps(got), orch.get(f"{ORCH}/stage-runs/{run['id']}", headers=user).text,
                 json.dumps(get(orch, a["id"]))):
        assert token not in text and GHP not in text


@pytest.mark.parametrize("field", ["summary", "findings"])
def test_hub_masks_tokens_in_a_review_and_its_trail_post(orch: Api, laptop: Host, server: Host,
                                                         user: dict[str, str], field: str) -> None:
    apply_config(orch, config(reviews={"enabled": True}, pipeline={"stages": ["review", "merge"]}))
    a = work_done(laptop, orch, user)
    review = next_run(server)
    assert review is not None and review["stage"] == "review"
    token = tokens.PREFIX + "Rr7" * 14 + "q"
    body: dict[str, Any] = {"summary": "fine", "findings": [{"file": "a.py", "line": 1, "severity": "minor",
                                                             "message": "nit"}]}
    if field == "summary":
        body["summary"] = f"the diff prints {token}"
    else:
        body["findings"][0]["message"] = f"leaks {token}"
    got = report_run(server, review, state="done", verdict="request_changes", **body)
    assert got["state"] == "failed" and token not in json.dumps(got)
    orch.post(f"{ORCH}/notify", headers=user)
    r = orch.get(f"{ORCH}/assignments/{a['id']}/trail", headers=user)
    assert r.status_code == 200 and any("review" in p["key"] for p in r.json()["posts"]) and token not in r.text


def test_a_marker_planted_in_a_stuck_reason_cannot_stand_for_a_later_post(orch: Api, laptop: Host,
                                                                         user: dict[str, str]) -> None:
    """A worker's STUCK text reaches the stuck post verbatim. A marker of the attempt's later completion post
    planted there made the host's poster find "its" completion among its own comments and never post it (review
    of the orchestrator, fault r6). The hub makes HTML comments in such text inert; the poster matches a marker
    only where it ends a post (tests/orchestrator/merge/test_ghposter.py)."""
    from coordhub.core.ghtrail import marker

    a = assign(orch, user, issue=77, machine="laptop")
    job = laptop.next()
    assert job is not None and job["id"] == a["id"]
    planted = marker(f"{a['id']}:2:completion")
    laptop.report(job, "stuck", reason=f"STUCK: need a decision {planted}")
    orch.post(f"{ORCH}/notify", headers=user)
    posts = orch.get(f"{ORCH}/assignments/{a['id']}/trail", headers=user).json()["posts"]
    stuck = next(p for p in posts if p["key"].endswith(":stuck"))
    assert planted not in stuck["body"] and "&lt;!-- coord:post key=" in stuck["body"]
    assert stuck["body"].endswith(marker(stuck["key"]))
