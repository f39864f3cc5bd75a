"""STAC items from many providers, stacked by terrapipe and by odc-stac, compared."""
