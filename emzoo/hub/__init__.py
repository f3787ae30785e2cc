"""Checkpoints in and out: the folder format (:mod:`~emzoo.hub.folder`), finding one by name
(:mod:`~emzoo.hub.resolve`), model cards (:mod:`~emzoo.hub.cards`) and publishing
(:mod:`~emzoo.hub.publish`, imported on use)."""

from emzoo.hub.folder import (  # noqa: F401
    CARD_NAME,
    CONFIG_NAME,
    HUB_FILES,
    TEST_PAIR_NAME,
    WEIGHTS_NAME,
    adapt_first_conv,
    emzoo_cfg,
    load_folder,
    provenance_cfg,
    save_pretrained,
    state_hash,
    verify_test_pair,
)
from emzoo.hub.resolve import (  # noqa: F401
    HF_PREFIX,
    available_models,
    check_pinned,
    choice_label,
    create_model,
    download,
    info,
    load,
    locate,
    parse_hub_id,
    resolve_entry,
)
