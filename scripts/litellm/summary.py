"""Renders OUT/summary.md of scripts/bench-litellm.sh from the client's JSON reports.

usage: summary.py OUT LITELLM_VERSION SAT_STREAMS SAT_SECONDS
Overheads are differences of percentiles: proxied p50 - direct p50, proxied p99 - direct p99
(the runs are not paired request by request).
"""
import json
import os
import platform
import sys

out, version, sat_streams, sat_seconds = sys.argv[1:5]


def load(label):
    with open(os.path.join(out, f"{label}.json")) as f:
        return json.load(f)


def ms(x):
    return f"{x:.2f} ms" if abs(x) < 100 else f"{x:.0f} ms"


def unsaved(label):
    try:
        with open(os.path.join(out, f"{label}.unsaved")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def notes(r, label):
    """Cache hits, degraded answers and unsaved turns of a gateway run, if any."""
    parts = []
    if r.get("cache_hits"):
        parts.append(f"{r['cache_hits']} cache hits")
    if r.get("degraded"):
        kinds = ", ".join(f"{k} {v}" for k, v in r.get("failed_stages", {}).items())
        parts.append(f"{r['degraded']} degraded ({kinds})")
    if unsaved(label):
        parts.append(f"{unsaved(label)} turns not saved")
    return f" ({'; '.join(parts)})" if parts else ""


def cpu_of(report, name):
    return next((c for c in report["cpu"] if c["name"] == name), None)


cpu_model = "?"
try:
    with open("/proc/cpuinfo") as f:
        cpu_model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
except (OSError, StopIteration):
    pass
print(f"LiteLLM {version}; {os.cpu_count()} cores ({cpu_model}), {platform.system()} "
      f"{platform.release()}; mock, mesh, LiteLLM and client all on this machine.\n")
def loadavg(name):
    try:
        with open(os.path.join(out, name)) as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


print(f"Load average (1/5/15 min) at the start of the measurements: {loadavg('loadavg-start')}; "
      f"at the end: {loadavg('loadavg-end')}.\n")
print("**Time to first token** (first non-empty content delta; closed loop; warm-up excluded). "
      "Overhead = proxied percentile − direct percentile.\n")
print("| streams | path | n ok | errors | TTFT p50 | TTFT p99 | overhead p50 | overhead p99 | done p50 |")
print("|---|---|---|---|---|---|---|---|---|")
for streams in (1, 20):
    direct = load(f"direct-{streams}")
    for path, label in (("direct to mock", "direct"), ("MangaAssist gateway", "ours"),
                        ("LiteLLM", "litellm")):
        r = load(f"{label}-{streams}")
        t, e = r["ttft_ms"], r["e2e_ms"]
        if label == "direct":
            over = ("—", "—")
        else:
            over = (ms(t["p50"] - direct["ttft_ms"]["p50"]), ms(t["p99"] - direct["ttft_ms"]["p99"]))
        print(f"| {streams} | {path} | {r['ok']}{notes(r, label + '-' + str(streams))} | {r['errors']} | {ms(t['p50'])} | "
              f"{ms(t['p99'])} | {over[0]} | {over[1]} | {ms(e['p50'])} |")

print(f"\n**Saturation**: {sat_streams} closed-loop streams for {sat_seconds} s per target; CPU = "
      "utime + stime of the process tree over the measured window.\n")
print("| target | req/s | proxy CPU | proxy cores busy | **req per proxy CPU-second** | "
      "mock CPU per req | client CPU per req | TTFT p50 | p99 | errors (notes) |")
print("|---|---|---|---|---|---|---|---|---|---|")
per_core = {}
for label, name in (("sat-direct", "mock only (baseline)"), ("sat-ours", "MangaAssist gateway"),
                    ("sat-litellm", "LiteLLM (1 worker)")):
    r = load(label)
    ok = max(r["ok"], 1)
    proxy, mock = cpu_of(r, "proxy"), cpu_of(r, "mock")
    if proxy:
        per_core[label] = proxy["requests_per_cpu_second"]
        pc = (f"{proxy['cpu_seconds']:.1f} s", f"{proxy['cores_busy']:.2f}",
              f"**{proxy['requests_per_cpu_second']:.0f}**")
    else:
        pc = ("—", "—", f"(mock: {mock['requests_per_cpu_second']:.0f})")
    t = r["ttft_ms"]
    print(f"| {name} | {r['requests_per_second']:.0f} | {pc[0]} | {pc[1]} | {pc[2]} | "
          f"{mock['cpu_seconds'] / ok * 1e6:.0f} µs | {r['client_cpu_seconds'] / ok * 1e6:.0f} µs | "
          f"{ms(t['p50'])} | {ms(t['p99'])} | {r['errors']}{notes(r, label)} |")
if per_core.get("sat-litellm"):
    print(f"\nRequests per CPU-second, gateway ÷ LiteLLM: "
          f"**{per_core['sat-ours'] / per_core['sat-litellm']:.1f}×** (target ≥ 50×).")
o1 = load("ours-1")["ttft_ms"]["p50"] - load("direct-1")["ttft_ms"]["p50"]
print(f"Gateway TTFT overhead at 1 stream, p50: **{ms(o1)}** (target ≤ 2 ms).")
