"""The memory planner: will this job fit that box? Pure arithmetic on the model's config and the job's settings
(no torch, no weights loaded), compared with what the box offers."""

from engine.plan.machine import Machine, machine_from_report, this_machine
from engine.plan.outputs import OutputPlan, plan_export, plan_sweep
from engine.plan.shape import ModelShape, UnknownShape, model_shape
from engine.plan.verdict import FITS, NO_FIT, TIGHT, JobPlan, estimate_job, plan_training

__all__ = ["FITS", "NO_FIT", "TIGHT", "JobPlan", "Machine", "ModelShape", "OutputPlan", "UnknownShape", "estimate_job",
           "machine_from_report", "model_shape", "plan_export", "plan_sweep", "plan_training", "this_machine"]
