#!/usr/bin/env python3
"""Instructions per review, total and by component, from two callgrind profiles
of the same server: one that answered N reviews and one that answered 2N
(benches/count.sh). Everything both runs share (start-up, the TLS handshake of
h2load's one connection, shutdown) cancels out in the difference, so

    instructions per review = (cost of the 2N run - cost of the N run) / N

for the total and for each component. Each function belongs to a component by
the crate (or module) its name starts with, after `<`, `&`, `mut` and `dyn`:

- TLS: rustls, tokio-rustls, ring (record decryption and encryption);
- HTTP/2: hyper, h2, http, axum, tower, axum-server and the handler in
  `webhook::server` (framing, routing, the overload guard);
- decode: serde_json's and serde's deserializers, k8s-openapi, the review and
  object parsers (`webhook::review`, `admission`, `engine::object`);
- engine: the rest of `portcullis::engine` but `decision` (rendering lines);
- encode: `Review::respond`, serde_json's serializer, base64, `engine::decision`;
- metrics: `portcullis::metrics`, prometheus-client;
- logging: tracing, tracing-core, tracing-subscriber, sharded-slab;
- runtime: tokio, mio, futures, the C library (system calls), thread start.

Functions of no component (core, alloc and std generics, malloc, memcpy) are
charged to their callers in proportion to the inclusive cost of each call
(callgrind's call edges, `calls=` lines), repeatedly until a component is
reached: an allocation in the JSON decoder counts as decode. What reaches no
component is "runtime".

Usage: callgrind_components.py N PROFILE_N PROFILE_2N [--json]
"""

import json
import re
import sys
from collections import defaultdict

COMPONENTS = [
    ("encode", r"portcullis::webhook::review::.*respond|portcullis::engine::decision|serde_json::ser|base64|"
               r"portcullis::admission::.*about"),
    ("decode", r"portcullis::webhook::review|portcullis::admission|portcullis::engine::object|serde_json|serde::|"
               r"k8s_openapi|serde_core|ryu|itoa"),
    ("metrics", r"portcullis::metrics|prometheus_client|dtoa"),
    ("engine", r"portcullis::engine|portcullis::policy|ipnet|glob::|regex|kube_core"),
    ("TLS", r"rustls|tokio_rustls|ring::|ring_core_|axum_server::tls_rustls"),
    ("HTTP/2", r"hyper|h2::|http::|http_body|httparse|axum|tower|portcullis::webhook::server"),
    ("logging", r"tracing|sharded_slab|nu_ansi_term|matchers"),
    ("runtime", r"tokio|mio::|futures|std::sys|std::thread|std::rt|start_thread|clone3?$|epoll|__libc|_dl_|"
                r"syscall|pthread|__GI_|^(read|write|writev|readv|sendmsg|recvmsg|recvfrom|sendto)$"),
]
ORDER = ["TLS", "HTTP/2", "decode", "engine", "encode", "metrics", "logging", "runtime"]
MATCHERS = [(name, re.compile(pattern)) for name, pattern in COMPONENTS]


def component(name):
    """The component a function belongs to by the path its name starts with; None for generic code."""
    head = re.sub(r"^(<|&|mut |dyn |\(|\[)+", "", name)
    if re.match(r"(core|alloc|std)::(?!sys|thread|rt)|memcpy|memmove|memset|memcmp|bcmp|malloc|free|realloc|calloc|"
                r"_int_|__memcpy|__memmove|__memset|__memcmp|__strlen|strlen|cfree|__rust_|_rjem|tcache|unlink",
                head):
        return None
    for key, pattern in MATCHERS:
        if pattern.match(head) or (key == "runtime" and pattern.search(head)):
            return key
    return None


def profile(path):
    """Instructions per component, generic code charged to its callers."""
    names = {}
    own = defaultdict(int)                        # function -> self cost
    calls = defaultdict(lambda: defaultdict(int))  # callee -> caller -> inclusive cost of those calls

    def name_of(spec):
        m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names[m.group(1)]

    fn = callee = None
    after_calls = False
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("fn="):
                fn = name_of(line[3:].rstrip("\n"))
            elif line.startswith("cfn="):
                callee = name_of(line[4:].rstrip("\n"))
            elif line.startswith("calls="):
                after_calls = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                cost = int(fields[1]) if len(fields) > 1 else 0
                if after_calls:
                    after_calls = False
                    if callee != fn:
                        calls[callee][fn] += cost
                else:
                    own[fn] += cost

    totals = defaultdict(float)
    pending = defaultdict(float)
    for function, cost in own.items():
        key = component(function)
        if key:
            totals[key] += cost
        else:
            pending[function] += cost
    for _ in range(64):
        if not pending:
            break
        moved = defaultdict(float)
        for function, cost in pending.items():
            callers = calls.get(function)
            weight = sum(callers.values()) if callers else 0
            if not weight:
                totals["runtime"] += cost
                continue
            for caller, edge in callers.items():
                share = cost * edge / weight
                key = component(caller)
                if key:
                    totals[key] += share
                else:
                    moved[caller] += share
        pending = moved
    for cost in pending.values():
        totals["runtime"] += cost
    return sum(own.values()), totals


def main():
    args = [a for a in sys.argv[1:] if a != "--json"]
    n, small, large = int(args[0]), args[1], args[2]
    (t1, c1), (t2, c2) = profile(small), profile(large)
    row = {"total": (t2 - t1) / n}
    row.update({key: (c2[key] - c1[key]) / n for key in ORDER})
    if "--json" in sys.argv:
        print(json.dumps({key: round(value) for key, value in row.items()}))
    else:
        print(" ".join(f"{key}={round(value)}" for key, value in row.items()))


if __name__ == "__main__":
    main()
