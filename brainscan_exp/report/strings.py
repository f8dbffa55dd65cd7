"""The deck's words, in French (the client's language) and English: one table per language.

Why: one builder makes both decks, so a number cannot differ between them; only these strings
and the number format (decimal comma in French) do. Placeholders are filled by the builder.
"""

from __future__ import annotations

import math

STRINGS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Détection de tumeurs cérébrales sur coupes IRM",
        "subtitle": "Synthèse, résultats mesurés et passation — {client}",
        "subtitle2": "Données : {dataset} · commit {commit} · généré le {date}",
        "sources": "Sources",
        "summary_title": "Synthèse",
        "summary_data": "Données : {n_files} fichiers, {n_distinct} images distinctes ; {n_labelled} étiquetées "
        "(après dédoublonnage), {n_pool} à étiqueter.",
        "summary_cv": "Validation croisée répétée (sup) : ROC-AUC {auc} [IC 95 % {low} – {high}].",
        "summary_semi": "Semi-supervisé vs supervisé : écart de ROC-AUC {delta} [{dlow} ; {dhigh}], {verdict}.",
        "semi_same": "pas de différence démontrée",
        "semi_diff": "différence significative",
        "summary_op": "Point de fonctionnement : sensibilité attendue {sens} sur le lot non étiqueté, "
        "{n_review} images envoyées en relecture.",
        "summary_dod": "Définition de « terminé » : {n_met}/{n_total} critères atteints (détail p. {page}).",
        "summary_scale": "4 M d'images : calcul {cost} (option la moins chère) ; le budget de {budget} "
        "ne paie pas la relecture experte à l'échelle.",
        "data_title": "Le problème et les pièges des données",
        "data_1": "Tâche : dire si une coupe IRM montre une tumeur, avec très peu d'étiquettes d'experts.",
        "data_2": "Copies exactes : {n_files} fichiers pour {n_distinct} images distinctes ; "
        "{n_copies} copies d'images étiquetées cachées dans le lot non étiqueté.",
        "data_3": "Quasi-copies (retournées, recadrées, recontrastées) : {n_near_groups} groupes, "
        "{n_near_files} fichiers ; les découpages gardent un groupe d'un seul côté.",
        "data_4": "Facteurs de confusion : séquences et plans de coupe mêlés, sources différentes selon la classe ; "
        "un modèle peut apprendre la source au lieu de la tumeur.",
        "data_caption": "Les 12 paires de quasi-copies confirmées les moins certaines.",
        "pipeline_title": "La chaîne de traitement",
        "pipeline_caption": "Chaque étape est une commande (task=...) et une exécution MLflow.",
        "pipe_steps": "Catalogue\n(hash des pixels)|Quasi-copies\n(hash + géométrie)|Embeddings\n({backbone})"
        "|Tête\n({head})|Seuil\n(règle {rule})|Tri\n(relecture {n_reads})",
        "pipeline_1": "Choix par défaut retenus par le banc de généralisation (pire cas sur {n_scenarios} scénarios).",
        "features_title": "Extraction de caractéristiques et prétraitement",
        "features_1": "Prétraitement adapté au modèle : redimensionnement, recadrage et normalisation lus "
        "dans la configuration du réseau pré-entraîné (timm).",
        "features_2": "Étape IRM : recadrage sur la tête, normalisation des intensités (percentiles), CLAHE.",
        "features_3": "Meilleure sonde : {best} (ROC-AUC {auc}) ; couches intermédiaires > couche finale.",
        "features_xlabel": "ROC-AUC (CV 5×5, régression logistique)",
        "cluster_title": "Analyse non supervisée et clustering",
        "cluster_1": "{clusterer} sur les embeddings : {n_clusters} groupes.",
        "cluster_2": "Association groupes ↔ classe (V de Cramér) : {v_label}.",
        "cluster_3": "Facteurs de confusion signalés : {n_flagged} ({flagged}).",
        "cluster_4": "Les groupes suivent en partie l'acquisition : ils ne servent pas seuls d'étiquettes.",
        "none": "aucun",
        "semi_title": "Supervisé vs semi-supervisé",
        "semi_1": "{n_folds} plis de validation croisée répétée, groupes de copies jamais séparés.",
        "semi_2": "Écart apparié vs sup, IC corrigé de Nadeau–Bengio, p ajustées par Holm.",
        "semi_3": "Aucun régime ne bat significativement le supervisé sur la ROC-AUC : {n_sig} sur {n_regimes}.",
        "forest_xlabel": "Écart de {metric} vs {reference} (régime − {reference})",
        "forest_sig": "significatif (Holm)",
        "forest_nonsig": "non significatif",
        "le_title": "Combien rapporte une étiquette de plus ?",
        "le_1": "{regime} : ROC-AUC {auc_small} avec ~{n_small} étiquettes, {auc_all} avec ~{n_all}.",
        "le_2": "Courbe ajustée 1 − AUC = c·n^−b : b = {b} ; à {n_more} étiquettes, AUC prévue {auc_more}.",
        "le_3": "Budgets réduits : {budget_folds} plis chacun ; régimes rapides seulement si indiqué.",
        "le_xlabel": "étiquettes d'entraînement (échelle log)",
        "le_ylabel": "ROC-AUC (moyenne, IC 95 %)",
        "le_fit": "ajustement {regime}",
        "gen_title": "Généralisation : le modèle retenu sur des données décalées",
        "gen_caption": "Tête {head}, embeddings {embedding}, règle {rule} ; vérité terrain de brain_mri_oc.",
        "gen_header": "scénario|n|ROC-AUC|IC 95 %|sensibilité|spécificité|relecture|critères",
        "yes": "oui",
        "no": "non",
        "op_title": "La métrique d'une tumeur manquée et le point de fonctionnement",
        "op_1": "Erreur la plus coûteuse : la tumeur manquée. Métrique principale : la sensibilité (rappel) "
        "au point de fonctionnement ; résumé unique : F2 (le rappel pèse 4 fois plus que la précision).",
        "op_2": "Seuil visé : sensibilité {target} ; règle « {rule} » ; seuil = {threshold}.",
        "op_3": "Sur le lot : sensibilité attendue {sens} [{sens_low} ; {sens_high}], spécificité {spec}.",
        "op_4": "Relecture de {n_review} images (budget {budget}) : tumeurs manquées attendues {missed}.",
        "op_xlabel": "P(cancer) sur le lot non étiqueté",
        "op_ylabel": "images",
        "op_threshold": "seuil",
        "dod_title": "Définition de « terminé » : tableau de bord",
        "dod_header": "critère|seuil|{measure_a}|atteint|pire cas généralisation|atteint",
        "dod_caption": "{measure_a} : {source_a}. Pire cas : vérité terrain, banc de généralisation.",
        "measure_truth": "mesuré (vérité)",
        "measure_pool": "estimé sur le lot",
        "source_truth": "prédictions comparées au fichier de vérité",
        "source_pool": "estimation du modèle sur le lot, sans vérité ; ROC-AUC en validation croisée",
        "crit_auc": "ROC-AUC",
        "crit_sens": "Sensibilité",
        "crit_spec": "Spécificité",
        "scale_title": "Passage à l'échelle : 4 millions d'images",
        "scale_1": "Débit mesuré : {rate} images/s sur {cores} cœurs CPU (moteur {runtime}).",
        "scale_2": "{option} : {cost}, {hours} h de calcul.",
        "scale_3": "Avec {budget} : calcul {compute} + {reads} relectures expertes ({share} des images).",
        "scale_cost": "coût (€)",
        "scale_hours": "durée (h)",
        "cond_title": "Faisabilité à 5 000 € : à quelles conditions",
        "cond_1": "Faisable pour le calcul, pas pour la relecture : le budget paie {reads} lectures, "
        "soit {share} des {n_images} images.",
        "cond_2": "Condition 1 — audit : {audit} coupes tumorales relues (~{audit_reads} lectures) pour "
        "prouver une sensibilité ≥ {bar}.",
        "cond_3": "Condition 2 — même distribution : le pire cas mesuré hors distribution est AUC {worst_auc}, "
        "sous le seuil de {auc_bar}.",
        "cond_4": "Condition 3 — dédoublonnage et contrôle des sources avant étiquetage.",
        "cond_5": "Risques : décalage de scanner, proportion de tumeurs inconnue, confusion source/classe.",
        "budget_title": "Ce que {budget} achètent sur {dataset}",
        "budget_1": "{reads} lectures expertes à {cost_per_read} : {share} du lot de {n_pool} images.",
        "budget_2": "Utilisées en file de relecture : tumeurs manquées attendues {before} → {after}.",
        "budget_3": "Utilisées comme étiquettes : AUC prévue {auc_now} → {auc_more} ({n_now} → {n_more} étiquettes).",
        "budget_4": "Recommandation : relire d'abord les images « normales » les plus suspectes.",
        "next_title": "Prochaines étapes",
        "next_1": "Auditer un échantillon aléatoire du lot pour mesurer la sensibilité réelle.",
        "next_2": "Valider sur un vrai nœud (16 vCPU) puis un cluster Ray le débit extrapolé de l'extraction OpenVINO ; accélérer le décodage JPEG, qui limite le débit sur 2 cœurs.",
        "next_3": "Recalculer le seuil sur chaque nouvelle source (règles pool_em / pool_mixture).",
        "next_4": "Relancer `make report` après chaque campagne : ce support se régénère.",
        "sources_title": "Sources de chaque chiffre",
        "notes_sources": "Sources :",
        "missing_optional": "Diapositive omise : {what} absent ({command}).",
    },
    "en": {
        "title": "Brain-tumour detection in MRI slices",
        "subtitle": "Synthesis, measured results and hand-over — {client}",
        "subtitle2": "Data: {dataset} · commit {commit} · generated {date}",
        "sources": "Sources",
        "summary_title": "Synthesis",
        "summary_data": "Data: {n_files} files, {n_distinct} distinct images; {n_labelled} labelled "
        "(after de-duplication), {n_pool} to label.",
        "summary_cv": "Repeated cross-validation (sup): ROC-AUC {auc} [95% CI {low} – {high}].",
        "summary_semi": "Semi-supervised vs supervised: ROC-AUC difference {delta} [{dlow}, {dhigh}], {verdict}.",
        "semi_same": "no difference shown",
        "semi_diff": "a significant difference",
        "summary_op": "Operating point: expected sensitivity {sens} on the unlabelled pool, "
        "{n_review} images sent to review.",
        "summary_dod": "Definition of done: {n_met}/{n_total} criteria met (details p. {page}).",
        "summary_scale": "4 M images: compute {cost} (cheapest option); the {budget} budget does not pay "
        "for expert review at scale.",
        "data_title": "The problem and the data traps",
        "data_1": "Task: tell whether an MRI slice shows a tumour, with very few expert labels.",
        "data_2": "Exact copies: {n_files} files for {n_distinct} distinct images; {n_copies} copies of "
        "labelled images hidden in the unlabelled pool.",
        "data_3": "Near copies (flipped, cropped, re-contrasted): {n_near_groups} groups, {n_near_files} files; "
        "every split keeps a group on one side.",
        "data_4": "Confounds: mixed sequences and planes, different sources per class; a model can learn the "
        "source instead of the tumour.",
        "data_caption": "The 12 least certain confirmed near-copy pairs.",
        "pipeline_title": "The pipeline",
        "pipeline_caption": "Each step is a command (task=...) and an MLflow run.",
        "pipe_steps": "Catalogue\n(pixel hash)|Near copies\n(hash + geometry)|Embeddings\n({backbone})"
        "|Head\n({head})|Threshold\n({rule} rule)|Triage\n({n_reads} reads)",
        "pipeline_1": "Defaults chosen by the generalization benchmark (worst case over {n_scenarios} scenarios).",
        "features_title": "Feature extraction and preprocessing",
        "features_1": "Model-adapted preprocessing: resize, crop and normalisation read from the pretrained "
        "network's own config (timm).",
        "features_2": "MRI step: head crop, percentile intensity normalisation, CLAHE.",
        "features_3": "Best probe: {best} (ROC-AUC {auc}); intermediate layers > final layer.",
        "features_xlabel": "ROC-AUC (5×5 CV, logistic regression)",
        "cluster_title": "Unsupervised analysis and clustering",
        "cluster_1": "{clusterer} on the embeddings: {n_clusters} clusters.",
        "cluster_2": "Cluster ↔ class association (Cramér's V): {v_label}.",
        "cluster_3": "Confounds flagged: {n_flagged} ({flagged}).",
        "cluster_4": "Clusters partly follow acquisition: they cannot serve as labels on their own.",
        "none": "none",
        "semi_title": "Supervised vs semi-supervised",
        "semi_1": "{n_folds} folds of repeated cross-validation, copy groups never split.",
        "semi_2": "Paired difference vs sup, Nadeau–Bengio corrected CI, Holm-adjusted p-values.",
        "semi_3": "No regime significantly beats supervised on ROC-AUC: {n_sig} of {n_regimes}.",
        "forest_xlabel": "{metric} difference vs {reference} (regime − {reference})",
        "forest_sig": "significant (Holm)",
        "forest_nonsig": "not significant",
        "le_title": "What is one more label worth?",
        "le_1": "{regime}: ROC-AUC {auc_small} with ~{n_small} labels, {auc_all} with ~{n_all}.",
        "le_2": "Fitted curve 1 − AUC = c·n^−b: b = {b}; at {n_more} labels, predicted AUC {auc_more}.",
        "le_3": "Reduced budgets: {budget_folds} folds each; fast regimes only where stated.",
        "le_xlabel": "training labels (log scale)",
        "le_ylabel": "ROC-AUC (mean, 95% CI)",
        "le_fit": "{regime} fit",
        "gen_title": "Generalization: the chosen model on shifted data",
        "gen_caption": "Head {head}, embeddings {embedding}, rule {rule}; brain_mri_oc ground truth.",
        "gen_header": "scenario|n|ROC-AUC|95% CI|sensitivity|specificity|review|criteria",
        "yes": "yes",
        "no": "no",
        "op_title": "The metric for a missed tumour and the operating point",
        "op_1": "Costliest error: a missed tumour. Primary metric: sensitivity (recall) at the operating "
        "point; single summary: F2 (recall weighs 4 times precision).",
        "op_2": "Target sensitivity {target}; rule “{rule}”; threshold = {threshold}.",
        "op_3": "On the pool: expected sensitivity {sens} [{sens_low}, {sens_high}], specificity {spec}.",
        "op_4": "Review of {n_review} images (budget {budget}): expected missed tumours {missed}.",
        "op_xlabel": "P(cancer) on the unlabelled pool",
        "op_ylabel": "images",
        "op_threshold": "threshold",
        "dod_title": "Definition of done: scorecard",
        "dod_header": "criterion|bar|{measure_a}|met|generalization worst case|met",
        "dod_caption": "{measure_a}: {source_a}. Worst case: ground truth, generalization benchmark.",
        "measure_truth": "measured (truth)",
        "measure_pool": "estimated on the pool",
        "source_truth": "predictions scored against the truth file",
        "source_pool": "the model's own estimate on the pool, no truth; ROC-AUC from cross-validation",
        "crit_auc": "ROC-AUC",
        "crit_sens": "Sensitivity",
        "crit_spec": "Specificity",
        "scale_title": "Scaling up: 4 million images",
        "scale_1": "Measured throughput: {rate} images/s on {cores} CPU cores ({runtime} runtime).",
        "scale_2": "{option}: {cost}, {hours} h of compute.",
        "scale_3": "With {budget}: compute {compute} + {reads} expert reads ({share} of the images).",
        "scale_cost": "cost (€)",
        "scale_hours": "time (h)",
        "cond_title": "Feasibility at €5,000: on what conditions",
        "cond_1": "Feasible for compute, not for review: the budget pays {reads} reads, {share} of the "
        "{n_images} images.",
        "cond_2": "Condition 1 — audit: {audit} tumour slices read (~{audit_reads} reads) to show sensitivity ≥ {bar}.",
        "cond_3": "Condition 2 — same distribution: the measured out-of-distribution worst case is AUC "
        "{worst_auc}, below the {auc_bar} bar.",
        "cond_4": "Condition 3 — de-duplication and source checks before labelling.",
        "cond_5": "Risks: scanner shift, unknown tumour share, source/class confounding.",
        "budget_title": "What {budget} buys on {dataset}",
        "budget_1": "{reads} expert reads at {cost_per_read}: {share} of the {n_pool}-image pool.",
        "budget_2": "Spent as a review queue: expected missed tumours {before} → {after}.",
        "budget_3": "Spent as labels: predicted AUC {auc_now} → {auc_more} ({n_now} → {n_more} labels).",
        "budget_4": "Recommendation: first review the most suspicious “normal” images.",
        "next_title": "Next steps",
        "next_1": "Audit a random sample of the pool to measure the real sensitivity.",
        "next_2": "Check the extrapolated OpenVINO extraction rate on a real 16-vCPU node, then a Ray cluster; speed up JPEG decoding, the bottleneck on 2 cores.",
        "next_3": "Re-derive the threshold on every new source (pool_em / pool_mixture rules).",
        "next_4": "Rerun `make report` after each campaign: this deck regenerates.",
        "sources_title": "Where every number comes from",
        "notes_sources": "Sources:",
        "missing_optional": "Slide left out: {what} missing ({command}).",
    },
}


def number(x: float, lang: str, digits: int = 3) -> str:
    """``0.984`` / ``0,984``; thousands grouped (``4,000,000`` / ``4 000 000``)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a" if lang == "en" else "n.d."
    text = f"{x:,.{digits}f}"
    if lang == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def integer(x: float, lang: str) -> str:
    return number(float(x) if math.isnan(float(x)) else round(float(x)), lang, 0)


def euros(x: float, lang: str, digits: int = 0) -> str:
    return f"{number(x, lang, digits)}\u00a0€" if lang == "fr" else f"€{number(x, lang, digits)}"


def percent(x: float, lang: str, digits: int = 1) -> str:
    return f"{number(100 * x, lang, digits)}\u00a0%" if lang == "fr" else f"{number(100 * x, lang, digits)}%"


def signed(x: float, lang: str, digits: int = 3) -> str:
    return ("+" if x >= 0 else "−") + number(abs(x), lang, digits)


def text(lang: str, key: str, **values) -> str:
    return STRINGS[lang][key].format(**values)
