"""A patient's pN stage from the classes of their lymph nodes (Camelyon17's rules).

Camelyon17 stages a patient from five sentinel or axillary nodes with the AJCC rules as
the challenge states them:

- **pN0**: no metastasis in any node (ITC-free);
- **pN0(i+)**: only isolated tumour cells;
- **pN1mi**: micro-metastases, no macro-metastasis;
- **pN1**: metastases in 1-3 nodes, at least one a macro-metastasis;
- **pN2**: metastases in 4-9 nodes, at least one a macro-metastasis.

A node with only ITC is not a positive node. This module holds the rules, the
grouping of slides into patients (``patient_P_node_N`` names, or a CSV) and the CSV
layouts of Camelyon17 (``stage_labels.csv``, which is also the submission layout).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from wsi.errors import WsiError
from wsi.regions.lesion_class import NodeClass

__all__ = [
    "MAX_NODES",
    "PatientStage",
    "PnStage",
    "StageLabels",
    "group_patients",
    "node_number",
    "patient_stage",
    "read_patient_csv",
    "read_stage_labels",
    "write_stages_csv",
]

#: Nodes per patient in Camelyon17 (and the most this rule set stages).
MAX_NODES = 5
_NODE_NAME = re.compile(r"^(?P<patient>patient_\d+)_node_(?P<node>\d+)$")
_SLIDE_SUFFIXES = (".tif", ".tiff", ".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".bif")


class PnStage(str, Enum):
    """A patient's pN stage, in increasing order (the kappa's scale)."""

    PN0 = "pN0"
    PN0_ITC = "pN0(i+)"
    PN1MI = "pN1mi"
    PN1 = "pN1"
    PN2 = "pN2"

    @property
    def rank(self) -> int:
        """0 (pN0) to 4 (pN2)."""
        return list(PnStage).index(self)


def patient_stage(classes: Iterable[NodeClass]) -> PnStage:
    """The pN stage of a patient whose nodes have these classes.

    Examples
    --------
    >>> N, I, m, M = (NodeClass(c) for c in ("negative", "itc", "micro", "macro"))
    >>> [patient_stage(c).value for c in ([N, N], [I, N], [m, I], [M, m, m, I, I])]
    ['pN0', 'pN0(i+)', 'pN1mi', 'pN1']
    >>> patient_stage([M, m, m, m, N]).value
    'pN2'
    """
    nodes = list(classes)
    positive = sum(c in (NodeClass.MICRO, NodeClass.MACRO) for c in nodes)
    if NodeClass.MACRO in nodes:
        return PnStage.PN2 if positive >= 4 else PnStage.PN1
    if NodeClass.MICRO in nodes:
        return PnStage.PN1MI
    return PnStage.PN0_ITC if NodeClass.ITC in nodes else PnStage.PN0


def node_number(stem: str) -> tuple[str, int] | None:
    """``(patient, node)`` of a Camelyon17 name such as ``patient_012_node_3``.

    Examples
    --------
    >>> node_number("patient_012_node_3")
    ('patient_012', 3)
    >>> node_number("Tumor_001") is None
    True
    """
    match = _NODE_NAME.match(stem)
    return None if match is None else (match["patient"], int(match["node"]))


def _stem(name: str) -> str:
    """A slide name without its folder and slide-file suffix."""
    name = Path(name.strip()).name
    for suffix in _SLIDE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_patient_csv(path: Path) -> dict[str, str]:
    """Slide stem -> patient from a ``slide,patient`` CSV (a header row is optional).

    Slides may be given as stems or file names (``a.tif``); blank lines are skipped.

    Raises
    ------
    WsiError
        The file cannot be read, a line does not have two fields, or a slide is
        given twice.
    """
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as err:
        raise WsiError(f"{path}: cannot read the patient CSV ({err})") from err
    mapping: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (number == 1 and cells[:2] == ["slide", "patient"]):
            continue
        if len(cells) != 2 or not all(cells):
            raise WsiError(
                f"{path}:{number}: expected 'slide,patient', got {','.join(row)!r}"
            )
        stem = _stem(cells[0])
        if stem in mapping:
            raise WsiError(f"{path}:{number}: slide {stem!r} is given twice")
        mapping[stem] = cells[1].removesuffix(".zip")
    if not mapping:
        raise WsiError(f"{path}: no 'slide,patient' lines")
    return mapping


def group_patients(
    stems: Sequence[str], mapping: Mapping[str, str] | None = None
) -> tuple[dict[str, list[str]], list[str]]:
    """Group slide stems into patients; also return the stems left out.

    Without ``mapping``, Camelyon17 names (``patient_P_node_N``) give the patient and
    other stems are left out; with it, every mapped stem must be among ``stems``.
    Nodes are sorted by their number (names) or stem (mapping).

    Raises
    ------
    WsiError
        A mapped slide has no result, or a patient has more than `MAX_NODES`
        nodes.
    """
    patients: dict[str, list[str]] = {}
    left_out = []
    if mapping is None:
        numbered = []
        for stem in stems:
            parsed = node_number(stem)
            if parsed is None:
                left_out.append(stem)
            else:
                numbered.append((parsed, stem))
        for (patient, _), stem in sorted(numbered):
            patients.setdefault(patient, []).append(stem)
    else:
        unknown = sorted(set(mapping) - set(stems))
        if unknown:
            raise WsiError(
                f"the patient CSV names {len(unknown)} slide(s) without a result "
                f"folder: {', '.join(unknown[:5])}; fix the CSV or run those slides"
            )
        left_out = [s for s in stems if s not in mapping]
        for stem in sorted(mapping):
            patients.setdefault(mapping[stem], []).append(stem)
    for patient, nodes in patients.items():
        if len(nodes) > MAX_NODES:
            raise WsiError(
                f"patient {patient} has {len(nodes)} nodes ({', '.join(nodes)}); "
                f"Camelyon17's rules stage at most {MAX_NODES} per patient: fix the "
                "patient CSV or the slide names"
            )
    return patients, left_out


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientStage:
    """A staged (or not staged) patient.

    Attributes
    ----------
    patient
        The patient's name (``patient_012``).
    nodes
        ``(slide file name, class)`` per node; the class is None for a slide without
        a finished result.
    stage
        The pN stage; None when a node has no result (never guessed).
    notes
        Why the stage is missing or what it rests on (fewer than five nodes).
    """

    patient: str
    nodes: tuple[tuple[str, NodeClass | None], ...]
    stage: PnStage | None
    notes: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, patient: str, nodes: Sequence[tuple[str, NodeClass | None]]
    ) -> PatientStage:
        """Stage a patient from their nodes' classes (None: the node failed)."""
        notes = []
        failed = [name for name, cls_ in nodes if cls_ is None]
        if failed:
            notes.append(f"not staged: no result for {', '.join(failed)}")
        if len(nodes) < MAX_NODES and not failed:
            notes.append(f"staged on {len(nodes)} of {MAX_NODES} nodes")
        stage = None if failed else patient_stage(c for _, c in nodes if c is not None)
        return cls(patient=patient, nodes=tuple(nodes), stage=stage, notes=tuple(notes))


def write_stages_csv(path: Path, patients: Sequence[PatientStage]) -> None:
    """Camelyon17's submission layout: ``patient,stage``, a patient, its nodes, ...

    A patient without a stage, and a node without a class, get an empty stage.
    Written atomically.
    """
    from wsi.store.atomic import atomic_output

    rows: list[tuple[str, str]] = [("patient", "stage")]
    for p in patients:
        rows.append((f"{p.patient}.zip", "" if p.stage is None else p.stage.value))
        rows += [(name, "" if c is None else c.value) for name, c in p.nodes]
    with atomic_output(path) as tmp, tmp.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageLabels:
    """A Camelyon17 ``stage_labels.csv``: patients' stages, nodes' classes (by stem).

    ``node_patient`` maps each node to the patient line above it (the file lists a
    patient's nodes after it).
    """

    patients: dict[str, PnStage]
    nodes: dict[str, NodeClass]
    node_patient: dict[str, str]


def read_stage_labels(path: Path) -> StageLabels:
    """Read a ``stage_labels.csv`` (or a ``stages.csv`` this tool wrote).

    ``patient_P.zip`` lines give patients' stages, other lines nodes' classes; empty
    stages (not staged) are left out.

    Raises
    ------
    WsiError
        Unreadable file, or a stage or class that Camelyon17 does not define.
    """
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as err:
        raise WsiError(f"{path}: cannot read the stage labels ({err})") from err
    patients: dict[str, PnStage] = {}
    nodes: dict[str, NodeClass] = {}
    node_patient: dict[str, str] = {}
    patient = ""
    stages = {s.value.lower(): s for s in PnStage}
    classes = {c.value: c for c in NodeClass}
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (number == 1 and cells[0].lower() == "patient"):
            continue
        if len(cells) < 2:
            raise WsiError(f"{path}:{number}: expected 'name,stage', got {row!r}")
        name, value = cells[0], cells[1]
        if name.endswith(".zip"):
            patient = name.removesuffix(".zip")
        elif patient:
            node_patient[_stem(name)] = patient
        if not value:
            continue
        if name.endswith(".zip"):
            if value.lower() not in stages:
                raise WsiError(
                    f"{path}:{number}: unknown stage {value!r}; Camelyon17's stages "
                    f"are {', '.join(s.value for s in PnStage)}"
                )
            patients[patient] = stages[value.lower()]
        else:
            if value.lower() not in classes:
                raise WsiError(
                    f"{path}:{number}: unknown node class {value!r}; use one of "
                    f"{', '.join(classes)}"
                )
            nodes[_stem(name)] = classes[value.lower()]
    if not patients and not nodes:
        raise WsiError(f"{path}: no stage or node lines")
    return StageLabels(patients=patients, nodes=nodes, node_patient=node_patient)
