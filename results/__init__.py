"""The read side of a run: its Parquet tables (``store``), aggregations over many runs (``analysis``) and the HTML report (``report``)."""
