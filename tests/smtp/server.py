#!/usr/bin/env python3
"""A real SMTP server for deskbridge's email tests (aiosmtpd, Debian's python3-aiosmtpd).

Listens on 127.0.0.1:PORT. With --cert/--key it offers STARTTLS and requires it before AUTH
and mail (or, with --implicit-tls, speaks TLS from the first byte); with --user/--password it
requires AUTH PLAIN or LOGIN with exactly those. Recipients given with --reject are refused
with 550, those given with --defer-once get 451 the first time they are named and are
accepted after. Each accepted message is saved as DIR/<n>.eml, with its envelope beside it as
DIR/<n>.json ({"mail_from", "rcpt_tos"}). Prints "ready" once it accepts connections and
runs until its standard input closes or it is terminated.
"""

import argparse
import json
import logging
import os
import ssl
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, folder, reject, defer_once):
        self.folder = folder
        self.reject = {a.lower() for a in reject}
        self.defer_once = {a.lower() for a in defer_once}
        self.lock = threading.Lock()
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lowered = address.lower()
        if lowered in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        with self.lock:
            if lowered in self.defer_once:
                self.defer_once.discard(lowered)
                return f"451 4.3.0 <{address}>: Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.folder, str(n))
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        # The envelope first: a test that sees the .eml finds its envelope too.
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".eml.tmp", base + ".eml")
        return f"250 2.0.0 Ok: queued as {n}"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: aiosmtpd answers 535 itself when the credentials are wrong.
        return AuthResult(success=ok, handled=False)

    return check


def main():
    # aiosmtpd 1.4 logs a warning about its own use of a deprecated attribute on every AUTH,
    # and warns that AUTH over TLS from the first byte does not require STARTTLS.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--defer-once", action="append", default=[])
    args = p.parse_args()

    kwargs = {}
    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    if context and args.implicit_tls:
        kwargs["ssl_context"] = context
    elif context:
        kwargs["server_kwargs"] = {"tls_context": context, "require_starttls": True}
    if args.user:
        server_kwargs = kwargs.setdefault("server_kwargs", {})
        server_kwargs["authenticator"] = authenticator(args.user, args.password or "")
        server_kwargs["auth_required"] = True
        # With TLS from the first byte aiosmtpd does not know the connection is encrypted.
        server_kwargs["auth_require_tls"] = context is not None and not args.implicit_tls
    handler = Handler(args.dir, args.reject, args.defer_once)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
