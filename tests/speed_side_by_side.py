"""The 1080p frame-path work (docs/renderer.md) side by side in one run: frame by frame interleaved, paced at 25 fps.

    git archive e7d760b core/render/warp.py | tar -x -C /tmp/base
    python tests/speed_side_by_side.py /tmp/base/core/render/warp.py [frames]

"before" = this code with `frame_ahead=False` (the output frame made on the frame path, as before the
change) and the warp module given (8-bit bicubic remap, np.linalg.solve affines); "after" = this code.
Prints mean/p95 ms per stage, the ratio to the copy-and-paste floor, and how many frames were identical.
"""
import importlib.util, json, sys, time
import numpy as np, cv2
from hygie.core.package.avatar import load_package
from hygie.core.bench.render import _driving_lips
from hygie.core.render.renderer import Renderer, RendererConfig
spec = importlib.util.spec_from_file_location("oldwarp", sys.argv[1])
OLD = importlib.util.module_from_spec(spec); sys.modules["oldwarp"] = OLD; spec.loader.exec_module(OLD)
cv2.setNumThreads(1)
a = load_package(None)
frames, warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 300, 30
res = {}
for size in [(1280, 720), (1920, 1080)]:
  for body in (True, False):
    rs = {"before": Renderer(a, size, RendererConfig(frame_ahead=False, body=body)),
          "after": Renderer(a, size, RendererConfig(frame_ahead=True, body=body))}
    w = rs["before"].warper
    rs["before"].warper = OLD.PiecewiseAffineWarper(w.tris, interpolation=w.interp, coarse_above=w.coarse_above)
    lips = _driving_lips(a, frames + warmup)
    for r in rs.values():
        for i in range(len(lips)): r.render_lips(lips[i], i)
        r.restart_body(); r.reset()
    acc = {k: {s: [] for s in ("total", "warp", "frame", "blend")} for k in rs}
    acc["floor"] = {"total": []}
    first = rs["before"]; patches = {}
    l0 = open("/proc/loadavg").read().split()[0]
    nxt = time.perf_counter(); same = 0
    for i in range(len(lips)):
        nxt += 1 / 25; time.sleep(max(0.0, nxt - time.perf_counter()))
        outs = {}
        for k, r in (rs.items() if i % 2 else reversed(rs.items())):
            outs[k] = r.render_lips(lips[i], i)
            if i >= warmup:
                for s in acc[k]: acc[k][s].append(r.timings[s])
        same += np.array_equal(outs["before"], outs["after"])
        j, x0, y0, al = first.last["mouth"], first.last["x0"], first.last["y0"], first.last["alpha"]
        shp = al.shape if al is not None else (1, 1)
        if (j, shp) not in patches: patches[(j, shp)] = np.ascontiguousarray(cv2.resize(first.crop(j)[..., :3], (shp[1], shp[0])))
        t = time.perf_counter(); o = first.loop.frame(i).copy(); o[y0:y0 + shp[0], x0:x0 + shp[1]] = patches[(j, shp)]
        if i >= warmup: acc["floor"]["total"].append(time.perf_counter() - t)
    l1 = open("/proc/loadavg").read().split()[0]
    for r in rs.values(): r.close()
    fl = np.mean(acc["floor"]["total"])
    name = f"{'body' if body else 'idle loop'} {size[0]}x{size[1]}"
    res[name] = {k: {s: (np.mean(v) * 1e3, np.percentile(v, 95) * 1e3) for s, v in d.items()} for k, d in acc.items()}
    res[name]["load"] = (l0, l1); res[name]["identical"] = same
    print(f"{name} (load {l0}->{l1}, identical frames {same}/{len(lips)})")
    for k in ("before", "after", "floor"):
        d = acc[k]
        print(f"   {k:7s} " + " ".join(f"{s} {np.mean(v)*1e3:.2f}/{np.percentile(v,95)*1e3:.2f}" for s, v in d.items()) + f"  ratio {np.mean(d['total'])/fl:.1f}", flush=True)
