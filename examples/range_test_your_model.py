"""Your own model: Smith's LR range test on torchvision's ResNet-18, its verdict and bounds, then 1cycle between them.

    python examples/range_test_your_model.py --data data           # CIFAR-10 under data/ (downloaded if absent)
    python examples/range_test_your_model.py --synthetic            # random tensors, tiny sizes: CPU, < 2 minutes
"""

import argparse
import itertools
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

import superconv
from superconv.models.zoo import torchvision_resnet18

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--data", default="data", help="folder for torchvision's CIFAR10 (cifar-10-batches-py)")
p.add_argument("--synthetic", action="store_true", help="random 8x8 tensors instead of CIFAR-10")
p.add_argument("--out", default="outputs/examples", help="where range_test.png goes")
args = p.parse_args()
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
if args.synthetic:  # 10 classes, each a fixed random pattern plus noise: learnt in a few dozen steps
    torch.set_num_threads(1)  # tensors this small: 19 s on 1 thread, 118 s on 2 (2-core CPU, training alongside)
    patterns = torch.randn(10, 3, 8, 8)
    def fake(n):
        y = torch.randint(0, 10, (n,))
        return TensorDataset(patterns[y] + torch.randn(n, 3, 8, 8), y)
    train, test = fake(512), fake(64)
    batch, range_iters, train_iters, end_lr = 32, 30, 30, 0.1  # a few steps: a small LR range
else:
    import torchvision.transforms as T
    from torchvision.datasets import CIFAR10
    norm = T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    aug = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    train = CIFAR10(args.data, train=True, download=True, transform=aug)
    test = CIFAR10(args.data, train=False, download=True, transform=T.Compose([T.ToTensor(), norm]))
    batch, range_iters, train_iters, end_lr = 256, 1000, 3000, 3.0  # the paper's range, 2000 test images
train_loader = DataLoader(train, batch_size=batch, shuffle=True, drop_last=True, num_workers=0 if args.synthetic else 4)
val_loader = DataLoader(Subset(test, range(min(2000, len(test)))), batch_size=500)

model = torchvision_resnet18(num_classes=10).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
# Smith's test: LR 0 -> end_lr linearly, test accuracy 20 times along the way (10 when synthetic); bounds
# min_lr = max_lr / 10 (1cycle guidance); model and optimizer are restored afterwards
result = superconv.range_test(model, optimizer, train_loader, val_loader=val_loader, start_lr=0.0, end_lr=end_lr,
                              num_iter=range_iters, eval_every=range_iters // (10 if args.synthetic else 20),
                              min_div=10, amp="bf16" if device == "cuda" else None)
print(result)
Path(args.out).mkdir(parents=True, exist_ok=True)
result.plot(Path(args.out) / "range_test.png")
bounds = result.bounds or {"min_lr": 0.01, "max_lr": 0.1}  # no bounds (never learned): a cautious default
print(f"verdict: {result.verdict['label'] if result.verdict else None}; "
      f"bounds: min_lr {bounds['min_lr']:.3g}, max_lr {bounds['max_lr']:.3g}")

# 1cycle between the bounds: min_lr -> max_lr -> min_lr, then annihilation; momentum 0.95 -> 0.85 -> 0.95
scheduler = superconv.OneCycle(optimizer, max_lr=bounds["max_lr"], min_lr=bounds["min_lr"], total_steps=train_iters)
estimate = superconv.LREstimate(model.parameters(), every=10)  # the paper's Hessian-free LR estimate (Fig 5)
batches = itertools.chain.from_iterable(itertools.repeat(train_loader))  # the loader, epoch after epoch
model.train()
for _, (x, y) in zip(range(train_iters), batches):
    loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device))
    optimizer.zero_grad()
    loss.backward()
    lr = optimizer.param_groups[0]["lr"]  # this step's
    optimizer.step()
    estimate.update(lr)
    scheduler.step()
model.eval()
with torch.no_grad():
    correct = sum((model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in val_loader)
print(f"1cycle {bounds['min_lr']:.3g} -> {bounds['max_lr']:.3g}, {train_iters} steps: final loss {loss.item():.3f}, "
      f"LR estimate {estimate.current or float('nan'):.3g}, test accuracy {correct / len(val_loader.dataset):.3f}")
