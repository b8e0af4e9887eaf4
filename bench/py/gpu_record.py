"""`bash bench/gpu.sh record DIR...`, here after the device runs: one BENCHMARKS.md section per run's
gpu-results.json, written between the gpu.sh markers (bench/py/gpu_run.py writes the results)."""
from __future__ import annotations

import json
import re


def section(res: dict) -> str:
    env, st = res.get("env", {}), res.get("stages", {})
    card = env.get("card", "unknown card")
    stages = " ".join(k for k in ("tests", "bench", "speed", "peers", "quality", "ab") if k in st)
    lines = [f"### {card}: `STAGES=\"{stages}\" bash bench/gpu.sh run` (torch {env.get('torch')}, CUDA "
             f"{env.get('cuda')}, {env.get('cpus')} CPU cores)", ""]
    if "tests" in st:
        lines += [f"- GPU tests: `{st['tests'].get('summary', st['tests'])}`", ""]
    b = {**st.get("bench", {}), **st.get("speed", {})}
    if b:
        lines += ["| model, batch | full step img/s | step only | augment ms | plain fp32 reference img/s | full / reference |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for key, v in b.items():
            if not isinstance(v, dict):  # stage_s
                continue
            if "results" not in v:
                lines.append(f"| {key} | failed ({v}) | | | | |")
                continue
            rs = v["results"]
            ref = rs.get("reference", {}).get("images_per_s")
            lines.append(f"| {key} | {rs['full']['images_per_s']:.0f} | {rs['step']['images_per_s']:.0f} | "
                         f"{rs['augment']['ms_per_step']:.1f} | {ref:.0f} | {v.get('full_vs_reference')} |"
                         if ref else f"| {key} | {rs['full']['images_per_s']:.0f} | {rs['step']['images_per_s']:.0f} | "
                         f"{rs['augment']['ms_per_step']:.1f} | | |")
        lines.append("")
    p = st.get("peers", {})
    if p and "skipped" not in p:
        lines += ["| peer, model, precision | img/s |", "| --- | --- |"]
        lines += [f"| {k} | {v.get('images_per_s', v.get('img_s', v))} |" for k, v in p.items() if isinstance(v, dict)]
        lines.append("")
    q = st.get("quality", {})
    if q:
        lines += ["| run (CIFAR-10 subset, R18 CIFAR, B 512) | epochs | wall s | kNN top-1 | random init | raw pixels |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for k, v in q.items():
            if k == "stage_s" or not isinstance(v, dict):
                continue
            pct = lambda x: f"{100 * x:.1f}%" if isinstance(x, (int, float)) else "-"
            lines.append(f"| {k} | {v.get('epochs')} | {v.get('wall_s')} | {pct(v.get('knn_top1'))} | "
                         f"{pct(v.get('knn_top1_random_init'))} | {pct(v.get('knn_top1_raw_pixels'))} |")
        lines.append("")
    ab = st.get("ab", {})
    if ab:
        lines += ["| A/B cell (byol-cifar-short, 32 epochs, B 512, full width; one change) | wall s | kNN top-1 |",
                  "| --- | --- | --- |"]
        for k, v in ab.items():
            if isinstance(v, dict):
                knn = v.get("knn_top1")
                lines.append(f"| {k}: {v.get('changes')} | {v.get('wall_s', '-')} | "
                             f"{f'{100 * knn:.1f}%' if isinstance(knn, (int, float)) else v.get('failed', '-')} |")
        lines.append("")
    if res.get("skipped"):
        lines += [f"- skipped: {', '.join(res['skipped'])}", ""]
    return "\n".join(lines)


def record(results: list[str], benchmarks: str) -> int:
    """One section per run, in the order given (a session may split its device time into several calls)."""
    runs = [json.load(open(f, encoding="utf-8")) for f in results]
    text = open(benchmarks, encoding="utf-8").read()
    begin, end = "<!-- gpu.sh:begin -->", "<!-- gpu.sh:end -->"
    body = "\n".join(f"{section(res)}" for res in runs)
    block = f"{begin}\n{body}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## GPU (`bash bench/gpu.sh`)\n\n" + block + "\n"
    open(benchmarks, "w", encoding="utf-8").write(text)
    print(f"recorded {len(runs)} run(s) on {runs[0].get('env', {}).get('card')} into {benchmarks}")
    return 0
