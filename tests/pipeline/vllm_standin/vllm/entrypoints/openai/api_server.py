"""A stand-in for `python -m vllm.entrypoints.openai.api_server` (tests put tests/pipeline/vllm_standin on
PYTHONPATH): the same command line, /health, and /v1/completions answering in vLLM's response shape, choices in
reverse order (a client must order them by `index`). Each text is JSON of what the request asked, so a test can
check what reached the server. STANDIN_MODE: "exit" exits at once with status 3, "unhealthy" answers /health 503."""

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
for flag in ("--model", "--served-model-name", "--host", "--port", "--seed", "--tensor-parallel-size",
             "--gpu-memory-utilization"):
    parser.add_argument(flag, required=True)
args, extra = parser.parse_known_args()
MODE = os.environ.get("STANDIN_MODE", "")
if MODE == "exit":
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.send(503 if MODE == "unhealthy" else 200, {})
        elif self.path == "/argv":
            self.send(200, {"argv": sys.argv[1:], "extra": extra})
        else:
            self.send(404, {"error": self.path})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/completions" or body.get("model") != args.served_model_name:
            self.send(404, {"error": {"message": f"no {self.path} for model {body.get('model')}"}})
            return
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        asked = {k: body.get(k) for k in ("n", "temperature", "top_p", "max_tokens", "seed", "stop",
                                          "add_special_tokens")}
        choices = [{"index": i * body["n"] + j, "finish_reason": "stop",
                    "text": json.dumps({"prompt": p, "sample": j, **asked})}
                   for i, p in enumerate(prompts) for j in range(body["n"])]
        self.send(200, {"object": "text_completion", "model": body["model"], "choices": choices[::-1]})


ThreadingHTTPServer((args.host, int(args.port)), Handler).serve_forever()
