"""The encoder: what pretraining produces and every later stage reads.

`networks` holds the SimCLR model (a ResNet backbone and a projection head) and its registry of
architectures; `checkpoint` saves and loads checkpoints with `weights_only=True` (the seed's
included) and gives an `Encoder` (backbone, input size, normalisation); `embed` turns a batch of
uint8 crops into backbone features (L2-normalised on request) on a chosen device and precision, the one
implementation used by the training monitor, evaluation, classification and detection.
"""
