"""Tiny randomly initialized depth checkpoints saved with save_pretrained (no network).

Shapes follow the real checkpoints' layouts (DPT-hybrid like Intel/dpt-hybrid-midas, plain DPT,
Depth Anything V2) at a few hundred kilobytes, so the loading code runs as it does on real files.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def _save(model, folder: Path, **proc_kw) -> Path:
    from transformers import DPTImageProcessorPil

    model.save_pretrained(folder)
    DPTImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3, **proc_kw).save_pretrained(folder)
    return folder


def tiny_hybrid(folder: Path) -> Path:
    """DPT-hybrid (BiT + ViT) like Intel/dpt-hybrid-midas, ~90k parameters, 32x32 input."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(0)
    config = DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=16, is_hybrid=True, backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 16, 16], fusion_hidden_size=16, reassemble_factors=[1, 1, 1, 0.5],
        use_auxiliary_head=False, backbone_featmap_shape=[1, 32, 2, 2],
        backbone_config={"global_padding": "same", "layer_type": "bottleneck", "depths": [1, 1, 1],
                         "hidden_sizes": [8, 16, 32], "embedding_size": 8, "num_groups": 4,
                         "out_features": ["stage1", "stage2", "stage3"],
                         "embedding_dynamic_padding": True})
    return _save(DPTForDepthEstimation(config).eval(), folder, size={"height": 32, "width": 32})


def tiny_dpt(folder: Path) -> Path:
    """Plain ViT DPT like Intel/dpt-large, ~100k parameters, 32x32 input."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(1)
    config = DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 16, 16], fusion_hidden_size=16, use_auxiliary_head=False)
    return _save(DPTForDepthEstimation(config).eval(), folder, size={"height": 32, "width": 32})


def tiny_depth_anything(folder: Path) -> Path:
    """Depth Anything V2 layout (Dinov2 backbone), keep-aspect-ratio processor like the real one."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

    torch.manual_seed(2)
    config = DepthAnythingConfig(
        backbone_config={"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "intermediate_size": 37, "image_size": 28,
                         "patch_size": 14, "out_features": ["stage1", "stage2"],
                         "reshape_hidden_states": False},
        reassemble_hidden_size=32, patch_size=14, neck_hidden_sizes=[8, 16],
        reassemble_factors=[2, 1], fusion_hidden_size=16, head_hidden_size=8)
    return _save(DepthAnythingForDepthEstimation(config).eval(), folder,
                 size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14)


def weights_dir_with(tmp_path: Path, folders: dict[str, Path]) -> Path:
    """A --depth-weights folder holding ``<org>--<name>`` copies of the given checkpoints."""
    root = tmp_path / "weights"
    for model_id, src in folders.items():
        shutil.copytree(src, root / model_id.replace("/", "--"))
    return root
