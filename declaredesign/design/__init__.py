"""Design layer: steps, composition, simulation and diagnosis (R: DeclareDesign)."""

from .aggregate import summarize
from .design import Design
from .designers import designer, parameter_names
from .diagnosands import declare_diagnosands
from .diagnosis import Diagnosis, compare_diagnoses, diagnose_simulations
from .search import SearchResult, find_mde, find_sample_size
from .simulate import (
    delete_step,
    diagnose_design,
    draw_data,
    draw_estimands,
    draw_estimates,
    expand_design,
    get_estimates,
    insert_step,
    redesign,
    replace_step,
    run_design,
    simulate_design,
)
from .steps import (
    declare_assignment,
    declare_estimand,
    declare_estimator,
    declare_inquiry,
    declare_measurement,
    declare_model,
    declare_population,
    declare_potential_outcomes,
    declare_reveal,
    declare_sampling,
    declare_step,
    declare_test,
)
from .steps.summary import glance

__all__ = [
    "Design",
    "Diagnosis",
    "SearchResult",
    "compare_diagnoses",
    "declare_assignment",
    "declare_diagnosands",
    "declare_estimand",
    "declare_estimator",
    "declare_inquiry",
    "declare_measurement",
    "declare_model",
    "declare_population",
    "declare_potential_outcomes",
    "declare_reveal",
    "declare_sampling",
    "declare_step",
    "declare_test",
    "delete_step",
    "designer",
    "diagnose_design",
    "diagnose_simulations",
    "draw_data",
    "draw_estimands",
    "draw_estimates",
    "expand_design",
    "find_mde",
    "find_sample_size",
    "get_estimates",
    "glance",
    "insert_step",
    "redesign",
    "replace_step",
    "parameter_names",
    "run_design",
    "simulate_design",
    "summarize",
]
