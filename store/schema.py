"""Schema of the store as an ordered list of migrations; `PRAGMA user_version` records how many ran."""
from __future__ import annotations

MIGRATIONS: list[str] = [
    """
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        source TEXT,
        root TEXT NOT NULL,
        fingerprint TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE classes (
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        class_index INTEGER NOT NULL,
        coco_id INTEGER,
        name TEXT NOT NULL,
        folder TEXT NOT NULL,
        PRIMARY KEY (dataset_id, class_index)
    );
    CREATE TABLE crops (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        split TEXT NOT NULL,
        class_index INTEGER NOT NULL,
        source_image TEXT NOT NULL,
        image_id INTEGER,
        annotation_id INTEGER NOT NULL,
        bbox TEXT NOT NULL,
        crop_bbox TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        UNIQUE (dataset_id, split, annotation_id)
    );
    CREATE INDEX crops_dataset_split ON crops (dataset_id, split);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT,
        dataset_id INTEGER,
        config TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        error TEXT,
        summary TEXT NOT NULL DEFAULT '{}',
        checkpoint TEXT,
        pid INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        time TEXT NOT NULL
    );
    CREATE INDEX metrics_run ON metrics (run_id, name, step);
    CREATE TABLE label_edits (
        id INTEGER PRIMARY KEY,
        crop_id INTEGER NOT NULL REFERENCES crops(id) ON DELETE CASCADE,
        old_class_index INTEGER NOT NULL,
        new_class_index INTEGER NOT NULL,
        time TEXT NOT NULL,
        note TEXT
    );
    CREATE INDEX label_edits_crop ON label_edits (crop_id, id);
    """,
    """
    ALTER TABLE runs ADD COLUMN pid_start TEXT;
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO counters (name, value) SELECT 'runs', COALESCE(MAX(id), 0) FROM runs
    """,
    """
    ALTER TABLE datasets ADD COLUMN source_fingerprint TEXT;
    CREATE TABLE set_aside_edits (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        split TEXT NOT NULL,
        annotation_id INTEGER NOT NULL,
        source_image TEXT NOT NULL,
        bbox TEXT NOT NULL,
        old_class_index INTEGER NOT NULL,
        new_class_index INTEGER NOT NULL,
        time TEXT NOT NULL,
        note TEXT,
        reason TEXT NOT NULL,
        set_aside_at TEXT NOT NULL
    );
    CREATE INDEX set_aside_edits_dataset ON set_aside_edits (dataset_id, id)
    """,
    """
    CREATE TABLE drawings (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        file_name TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        split TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'new',
        added_at TEXT NOT NULL,
        annotated_at TEXT,
        UNIQUE (dataset_id, sha256)
    );
    CREATE TABLE annotation_edits (
        id INTEGER PRIMARY KEY,
        drawing_id INTEGER NOT NULL REFERENCES drawings(id) ON DELETE CASCADE,
        box_id INTEGER NOT NULL,
        batch INTEGER,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        old_bbox TEXT,
        new_bbox TEXT,
        old_class_index INTEGER,
        new_class_index INTEGER,
        score REAL,
        undoes INTEGER,
        time TEXT NOT NULL
    );
    CREATE INDEX annotation_edits_drawing ON annotation_edits (drawing_id, id);
    CREATE INDEX annotation_edits_box ON annotation_edits (box_id);
    CREATE TABLE crop_tags (
        crop_id INTEGER NOT NULL REFERENCES crops(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (crop_id, tag)
    );
    ALTER TABLE crops ADD COLUMN drawing_id INTEGER REFERENCES drawings(id) ON DELETE CASCADE;
    ALTER TABLE crops ADD COLUMN box_id INTEGER;
    CREATE INDEX crops_drawing ON crops (drawing_id);
    INSERT INTO counters (name, value) VALUES ('boxes', 0)
    """,
    """
    CREATE INDEX IF NOT EXISTS crops_dataset_class ON crops (dataset_id, class_index, split)
    """,
]
"""2: `runs.pid_start` (the worker's `process_identity`, so a reused pid is not taken for it) and
`counters`, the highest run id ever given, so a deleted run's id is never reused."""
"""3: `datasets.source_fingerprint` (the export's files as imported, checked by export-coco) and
`set_aside_edits`: label edits whose crop no longer matches the symbol they were made on (its box
or image changed, or it left the export on a re-import), kept with that symbol's identity instead
of being applied to another one."""
"""4: new drawings labelled in the app. `drawings` (images added to a dataset, kept under
`drawings/<dataset>/` of the workspace), `annotation_edits` (append-only: the boxes of a drawing
are the replay of its edits; edits of one action share `batch`, an undo names the edit it
`undoes`), `crops.drawing_id` and `crops.box_id` (the crops a finished drawing gave, one per box, with
negative annotation ids that no export row uses; an import never touches them),
`crop_tags` (Explore's tags) and the `boxes` counter (box ids are never given twice)."""
"""5: `crops_dataset_class`, so one class's crops (a gallery page, its count) are found without
reading the dataset's other crops."""

SCHEMA_VERSION = len(MIGRATIONS)
