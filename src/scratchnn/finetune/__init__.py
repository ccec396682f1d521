"""Fine-tuning: LoRA adapters, freezing, new heads, per-group learning rates and an audit.

A typical LoRA run::

    from scratchnn import finetune as ft

    clf = BertClassifier(encoder=pretrained_bert, num_labels=2)
    ft.apply_lora(clf, ["*.attention.self.query", "*.attention.self.value"], rank=8, alpha=16)
    ft.freeze_all_but(clf, ["*.lora_A", "*.lora_B", "classifier"])
    opt = AdamW(ft.param_groups(clf, base_lr=1e-3, weight_decay=0.01))
    audit = ft.TrainabilityAudit(clf, opt); print(audit.report()); audit.snapshot()
    ...  # first step, then audit.check_after_step()
    ft.save_lora(clf, "adapter/", include=["classifier"])

Full fine-tuning with a new head and layer-wise lr decay::

    ft.replace_head(model, num_outputs=5)
    opt = AdamW(ft.param_groups(model, base_lr=2e-5, head_lr=1e-3, layer_decay=0.8))
"""

from scratchnn.finetune.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, load_lora, save_lora
from scratchnn.finetune.audit import TrainabilityAudit, TrainabilityError, TrainabilityReport
from scratchnn.finetune.freezing import (
    GradualUnfreezer,
    batchnorm_modules,
    freeze,
    freeze_all_but,
    freeze_batchnorm_stats,
    freeze_first_blocks,
    match_parameters,
    trainable_parameter_names,
    unfreeze,
    unfreeze_batchnorm_stats,
)
from scratchnn.finetune.heads import HEAD_INITS, TASKS, GPTClassifier, replace_head
from scratchnn.finetune.layout import ModelLayout, model_layout
from scratchnn.finetune.param_groups import describe_param_groups, param_groups
from scratchnn.nn.lora import (
    LoRALinear,
    apply_lora,
    linear_module_names,
    lora_modules,
    lora_state_dict,
    merge_lora,
    unmerge_lora,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "HEAD_INITS",
    "TASKS",
    "GPTClassifier",
    "GradualUnfreezer",
    "LoRALinear",
    "ModelLayout",
    "TrainabilityAudit",
    "TrainabilityError",
    "TrainabilityReport",
    "apply_lora",
    "batchnorm_modules",
    "describe_param_groups",
    "freeze",
    "freeze_all_but",
    "freeze_batchnorm_stats",
    "freeze_first_blocks",
    "linear_module_names",
    "load_lora",
    "lora_modules",
    "lora_state_dict",
    "match_parameters",
    "merge_lora",
    "model_layout",
    "param_groups",
    "replace_head",
    "save_lora",
    "trainable_parameter_names",
    "unfreeze",
    "unfreeze_batchnorm_stats",
    "unmerge_lora",
]
