"""A loopback SMTP server for the tests: stores each accepted message as a file.

Usage: smtp_sink.py DIRECTORY MODE [PORT], where MODE is "accept" or "reject-recipient".
Listens on PORT of 127.0.0.1 (default: a free one) and prints the port on the first line
of stdout.
"""

import asyncio
import itertools
import os
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, directory, mode):
        self.directory = directory
        self.mode = mode
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "reject-recipient":
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        number = next(self.counter)
        final = os.path.join(self.directory, f"{number:06}.eml")
        partial = final + ".partial"
        with open(partial, "wb") as file:
            file.write(envelope.original_content)
        with open(final + ".envelope", "w") as file:
            file.write(envelope.mail_from + "\n" + "\n".join(envelope.rcpt_tos) + "\n")
        os.rename(partial, final)
        return "250 2.0.0 Message accepted"


async def main():
    directory, mode = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    handler = Handler(directory, mode)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.test", decode_data=False),
        host="127.0.0.1",
        port=port,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
