"""PyTorch's training-step speed for bmlp and bcnn and their f32 twins, the
reference beside `bitprop bench train` on a CUDA GPU, or with --cpu on the
CPU (two threads, as lavapipe has on the machines here).

The same layer shapes as bitprop's models (no biases, batch norm after every
layer, sign activations with the straight-through estimator clipped to
|x| <= 1, sign weights with an identity STE and no per-channel scale, Adam
lr 1e-3), with binarization simulated in float as the papers' code does:
the work per step matches, not every detail of the recipe. fp32 with TF32
off, eager mode, synthetic batches (bmlp 256, bcnn 128), 5 warm-up steps,
then the mean of 200 (bmlp) or 100 (bcnn) steps between two synchronizations
(on the CPU 50 and 10). Prints one JSON line per model, then a summary line.

Run: python3 benches/torch_reference.py [--cpu]
"""
import json, platform, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
cpu = "--cpu" in sys.argv[1:]
dev = "cpu" if cpu else "cuda"
if cpu:
    torch.set_num_threads(2)

def sync():
    if not cpu:
        torch.cuda.synchronize()

def sign_ste(x):
    h = F.hardtanh(x)
    return h + (torch.sign(x) - h).detach()

def wsign(w):
    return w + (torch.sign(w) - w).detach()

class Bmlp(nn.Module):
    def __init__(s, binary):
        super().__init__(); s.b = binary
        s.fc = nn.ModuleList([nn.Linear(784, 1024, bias=False), nn.Linear(1024, 1024, bias=False), nn.Linear(1024, 10, bias=False)])
        s.bn = nn.ModuleList([nn.BatchNorm1d(1024), nn.BatchNorm1d(1024), nn.BatchNorm1d(10)])
    def forward(s, x):
        x = x.flatten(1)
        for i in range(3):
            w = wsign(s.fc[i].weight) if s.b else s.fc[i].weight
            x = s.bn[i](F.linear(x, w))
            if i < 2:
                x = sign_ste(x) if s.b else F.relu(x)
        return x

class Bcnn(nn.Module):
    def __init__(s, binary):
        super().__init__(); s.b = binary
        s.c1 = nn.Conv2d(1, 64, 3, padding=1, bias=False); s.b1 = nn.BatchNorm2d(64)
        s.c2 = nn.Conv2d(64, 128, 3, padding=1, bias=False); s.b2 = nn.BatchNorm2d(128)
        s.c3 = nn.Conv2d(128, 128, 3, padding=1, bias=False); s.b3 = nn.BatchNorm2d(128)
        s.fc = nn.Linear(6272, 10, bias=False); s.b4 = nn.BatchNorm1d(10)
    def act(s, x):
        return sign_ste(x) if s.b else F.relu(x)
    def w(s, m):
        return wsign(m.weight) if s.b else m.weight
    def forward(s, x):
        x = s.act(s.b1(s.c1(x)))
        x = s.act(s.b2(F.max_pool2d(F.conv2d(x, s.w(s.c2), padding=1), 2)))
        x = s.act(s.b3(F.max_pool2d(F.conv2d(x, s.w(s.c3), padding=1), 2)))
        return s.b4(F.linear(x.flatten(1), s.w(s.fc)))

def bench(name, model, batch, steps):
    m = model.to(dev)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, 28, 28, device=dev); y = torch.randint(0, 10, (batch,), device=dev)
    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward(); opt.step()
    for _ in range(5): step()
    sync()
    t = time.perf_counter()
    for _ in range(steps): step()
    sync()
    ms = (time.perf_counter() - t) * 1e3 / steps
    r = {"model": name, "batch": batch, "step_ms": ms, "samples_per_s": batch / (ms / 1e3)}
    print(json.dumps(r)); sys.stdout.flush()
    return r

mlp_steps, cnn_steps = (50, 10) if cpu else (200, 100)
out = [bench("bmlp", Bmlp(True), 256, mlp_steps), bench("bmlp-f32", Bmlp(False), 256, mlp_steps),
       bench("bcnn", Bcnn(True), 128, cnn_steps), bench("bcnn-f32", Bcnn(False), 128, cnn_steps)]
device = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)" if cpu else torch.cuda.get_device_name()
print(json.dumps({"torch": torch.__version__, "device": device, "runs": out}))
