"""Training: crops in, a checkpoint out.

`config` holds every setting of a run (`PretrainConfig`, the seed's `run.py` flags included) and
the registries the CLI and the app offer; `data` loads a crop folder into uint8 tensors in memory;
`augment` draws SimCLR views on the training device; `losses` and `optim` are the contrastive
loss and the optimisers with their learning-rate schedule; `distributed` wraps torch.distributed;
`trainer` is the training loop (set-up, step, end of epoch, checkpoint state), `monitor` its kNN
score and rank 0's records (store row, checkpoint files, TensorBoard), and `loop` runs it for one
run; `jobs` queues runs as worker processes for the app.
"""
