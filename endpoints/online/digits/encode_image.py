"""Turn an image file (or URL) into a request for the digits endpoint, on stdout.

    python endpoints/online/digits/encode_image.py my-digit.png > request.json
    python endpoints/online/digits/encode_image.py --url https://example.com/7.png
    python endpoints/online/digits/encode_image.py a.png b.jpg          # a list: one answer each
    python endpoints/online/digits/encode_image.py --data a.png         # {"data": [...]} form
    amlocal online-endpoint invoke -n digits --request-file request.json

sample-request.json (what the deploy step's smoke test sends) is `encode_image.py
data/digits/7/0007.png`; sample-request-data.json is the same image with `--data`.

Standard library only, so it runs anywhere a client does.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

SAMPLE = "data/digits/7/0007.png"


class BadSource(ValueError):
    """An image argument that cannot be sent: named, with what was expected."""


def item(source: str, as_url: bool) -> dict[str, str]:
    if as_url:
        return {"url": source}
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadSource(f"{source}: no such file (an image file, e.g. {SAMPLE})") from None
    except IsADirectoryError:
        raise BadSource(f"{source}: is a folder, not an image file (e.g. {SAMPLE})") from None
    except OSError as exc:
        raise BadSource(f"{source}: cannot be read: {exc.strerror}") from None
    return {"image": base64.b64encode(data).decode("ascii")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("sources", nargs="+", help="image files (or URLs with --url)")
    p.add_argument("--url", action="store_true", help="send the sources as URLs")
    p.add_argument("--data", action="store_true", help='{"data": [...]}: labels only')
    args = p.parse_args(argv)
    try:
        items = [item(s, args.url) for s in args.sources]
    except BadSource as exc:
        print(f"encode_image.py: error: {exc}", file=sys.stderr)
        return 2
    if args.data:
        body: object = {"data": [i.get("image") or i for i in items]}
    else:
        body = items[0] if len(items) == 1 else items
    json.dump(body, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
