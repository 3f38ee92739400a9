"""One module per studio page: each turns workspace records into HTML (or JSON for the live
pieces); none writes anything."""
