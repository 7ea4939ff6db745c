"""The teacher's predicted classes on a finished run's generated samples, and the student's agreement
with it per class: does the generator show the teacher every class?

    python results/foreign/generated_class_probe.py TEACHER.ts RUN_DIR [RUN_DIR ...]

1,024 samples of each run's last generator (train mode, as in training), seed 0, 1 thread.
"""
import torch, sys, json
from dfad.models.registry import build_model
def rebuild(e):
    m=build_model(e["arch"],**e["args"]); m.load_state_dict(e["state_dict"]); return m
torch.manual_seed(0); torch.set_num_threads(1)
teacher=torch.jit.load(sys.argv[1]).eval()
for run in sys.argv[2:]:
    ck=torch.load(run+"/checkpoints/last.pt",map_location="cpu",weights_only=True)
    g=rebuild(ck["models"]["generator"]).train(); s=rebuild(ck["models"]["student"]).eval()
    with torch.no_grad():
        x=torch.cat([g(torch.randn(128,ck["models"]["generator"]["args"].get("nz",256) if "nz" in ck["models"]["generator"]["args"] else 256)) for _ in range(8)])
        t=teacher(x); st=s(x)
    p=t.softmax(1)
    hist=torch.bincount(t.argmax(1),minlength=10).tolist()
    agree=[(st.argmax(1)[t.argmax(1)==c]==c).float().mean().item() if (t.argmax(1)==c).any() else None for c in range(10)]
    print(run.split('/')[-1], "teacher argmax counts", hist, "mean prob", [round(v,3) for v in p.mean(0).tolist()])
    print("  student agreement per teacher class", [None if a is None else round(a,2) for a in agree])
