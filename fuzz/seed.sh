#!/usr/bin/env bash
# Fills fuzz/corpus/<target> (not committed) with seeds: the token vectors and the open-redirect
# lists of the repository's testdata/, and the small hand-written seeds of fuzz/seeds/<target>.
set -euo pipefail
cd "$(dirname "$0")"
data=../testdata
for t in token redirect_uri return_to callback api_response; do mkdir -p "corpus/$t"; done
python3 - "$data" <<'PY'
import hashlib, json, os, sys
data = sys.argv[1]
def put(target, text):
    b = text.encode() if isinstance(text, str) else text
    name = hashlib.sha1(b).hexdigest()
    with open(os.path.join("corpus", target, name), "wb") as f:
        f.write(b)
doc = json.load(open(os.path.join(data, "tokens.json")))
for v in doc["vectors"]:
    tok = v["token"]
    put("token", tok)
    put("callback", b"\x01" + json.dumps({"state": "@S", "token": tok}).encode())
    put("callback", b"\x02state=@S&token=" + tok.encode())
    put("callback", b"\x00state=@S&token=" + tok.encode())
    claims = v.get("expect", {}).get("claims")
    if claims:
        put("api_response", b"\x00" + json.dumps({"data": claims}).encode())
for name in ("open-redirect-payloads.txt", "open-redirect-wordlist.txt"):
    for line in open(os.path.join(data, name), encoding="utf-8", errors="surrogateescape").read().split("\n"):
        if line:
            put("redirect_uri", line.encode("utf-8", "surrogateescape"))
            put("return_to", line.encode("utf-8", "surrogateescape"))
PY
for t in seeds/*/; do
  t=$(basename "$t")
  cp seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
done
for t in corpus/*/; do echo "$t: $(ls "$t" | wc -l) seeds"; done
