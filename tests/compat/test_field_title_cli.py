"""``coord conv send --sign`` from fields without ``--title``: the conversation's title, as the hub gives a turn it
builds (the signed turn is built here, and took the conversation id: review, seed-004 user run)."""

from __future__ import annotations

from tests.compat.conftest import World


def test_a_signed_turn_built_from_fields_takes_the_conversations_title(world: World) -> None:
    career, to, conv = world.career, world.homelab.address, world.conv
    assert career.coord("conv", "send", to, "--conversation", conv, "--type", "request", "--title", "Deploy X",
                        "--body", "Please deploy X.").code == 0
    signed = career.coord("conv", "send", to, "--conversation", conv, "--type", "progress", "--body", "more",
                          "--sign", "--json")
    assert signed.code == 0, signed
    assert signed.json()["title"] == "Deploy X" and "#+TITLE: Deploy X\n" in signed.json()["content"]
    first = career.coord("conv", "send", to, "--conversation", f"{conv}-new", "--type", "request", "--body", "b",
                         "--sign", "--json")
    assert first.code == 0 and first.json()["title"] == f"{conv}-new", first  # a new conversation: its id
