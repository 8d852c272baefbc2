"""The shootout's Python workload, recorded with the trace recorder: a word-frequency index
over generated text, a JSON round trip and a sort (dicts, lists, strings and small objects,
as Python programs make them). Deterministic: the same work on every run."""

import collections
import json
import re

words = ["w%d" % (i * 7919 % 5003) for i in range(1000000)]
text = " ".join(words)
counts = collections.Counter(re.findall(r"w\d+", text))
index = {w: list(range(n % 7)) for w, n in counts.items()}
rows = [{"id": i, "name": words[i]} for i in range(300000)]
blob = json.dumps({"counts": counts, "index": index, "rows": rows})
back = json.loads(blob)
top = sorted(back["counts"].items(), key=lambda kv: (-kv[1], kv[0]))[0]
print(len(blob), top)
