"""A metric plugin that builds its summary rows with the old name `Aggregate` (ix2x.stats or
ix2x.types) keeps working: the name now gives SummaryRow, whose positional fields are Aggregate's."""

import math

from ix2x.records import SummaryRow


def test_old_aggregate_name_builds_summary_rows():
    from ix2x.stats import Aggregate as from_stats
    from ix2x.types import Aggregate as from_types

    assert from_stats is from_types is SummaryRow
    row = from_stats("m", "k", 3, 0, 0.5, 0.4, 0.6, True, "percentile", "")
    assert (row.metric, row.key, row.n, row.value, row.ci_method, row.editor) == ("m", "k", 3, 0.5, "percentile", "")
    assert math.isclose(row.ci_high, 0.6)


def test_a_row_built_in_the_old_field_order_is_refused():
    """`editor` used to come first; a row built that way would shift every field silently."""
    import pytest

    with pytest.raises(TypeError, match="`editor` comes last now"):
        SummaryRow("instructx2x", "classifier_shift", "effect", 64, 0, 0.5)
