#!/usr/bin/env python3
"""Prints a saved message as JSON, parsed by Python's email package as a mail client would.

Usage: parse.py FILE.eml. Output: {"headers": [[name, decoded value], ...] in order,
"from"/"to"/"cc"/"reply_to": [{"name", "address"}, ...], "subject", "content_type",
"text" and "html" (the decoded parts of multipart/alternative, or null), "parts" (content
types of every leaf part) and "defects" (what the parser found wrong, for every part)}.
"""

import email
import email.policy
import json
import sys


def addresses(msg, name):
    header = msg.get(name)
    if header is None:
        return []
    return [{"name": a.display_name, "address": a.addr_spec} for a in header.addresses]


def part_text(msg, subtype):
    part = msg.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    return part.get_content()


def main():
    with open(sys.argv[1], "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    defects = [str(d) for d in msg.defects]
    parts = []
    for part in msg.walk():
        defects.extend(str(d) for d in part.defects)
        if not part.is_multipart():
            parts.append(part.get_content_type())
    out = {
        "headers": [[k, str(v)] for k, v in msg.items()],
        "from": addresses(msg, "From"),
        "to": addresses(msg, "To"),
        "cc": addresses(msg, "Cc"),
        "reply_to": addresses(msg, "Reply-To"),
        "subject": str(msg.get("Subject", "")),
        "content_type": msg.get_content_type(),
        "text": part_text(msg, "plain"),
        "html": part_text(msg, "html"),
        "parts": parts,
        "defects": defects,
    }
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
