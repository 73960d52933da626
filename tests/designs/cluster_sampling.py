"""Two-stage cluster sampling from a fixed population of 200 clusters x 20 units.

40 clusters, then 5 units in each. As DesignLibrary's ``cluster_sampling_designer(
N_clusters_in_block=200, N_i_in_cluster=20, n_clusters_in_block=40, n_i_in_cluster=5,
icc=0.2)`` writes it. R draws the population once, when the design is declared
(``declare_population(...)()``); the port reads the population R drew
(``cluster_sampling_population.csv``) so that the inquiry is the same.
"""

from pathlib import Path

import pandas as pd

import declaredesign as dd

N_blocks = 1
N_clusters_in_block = 200
N_i_in_cluster = 20
n_clusters_in_block = 40
n_i_in_cluster = 5
icc = 0.2

POPULATION = (Path(__file__).resolve().parents[1] / "fixtures" / "designlibrary"
              / "cluster_sampling_population.csv")

declared_population = dd.declare_population(
    block=dd.add_level(N=N_blocks),
    cluster=dd.add_level(N=N_clusters_in_block),
    subject=dd.add_level(N=N_i_in_cluster,
                         latent=f"draw_normal_icc(mean=0, N=N, clusters=cluster, ICC={icc})",
                         Y="draw_ordered(x=latent, breaks=qnorm(seq(0, 1, length_out=8)))"))
fixed_pop = pd.read_csv(POPULATION, dtype={"block": str, "cluster": str, "subject": str})
population = dd.declare_population(data=fixed_pop)
estimand = dd.declare_inquiry("mean(Y)", label="Ybar")
stage_1_sampling = dd.declare_sampling(
    S1=dd.strata_and_cluster_rs(strata="block", clusters="cluster", n=n_clusters_in_block),
    filter="S1 == 1")
stage_2_sampling = dd.declare_sampling(
    S2=dd.strata_rs(strata="cluster", n=n_i_in_cluster), filter="S2 == 1")
clustered_ses = dd.declare_estimator("Y ~ 1", model=dd.lm_robust, clusters="cluster",
                                     inquiry=estimand, label="Clustered Standard Errors")
cluster_sampling_design = (population + estimand + stage_1_sampling + stage_2_sampling
                           + clustered_ses)
