"""The recipe of the bundled models (training side of the classifier).

Patch data, augmentation, networks, distillation, batch-norm statistics, training,
evaluation on patches and bundling a run as a model.
"""
