"""Figures, drawn with matplotlib on figures that display in notebooks without pyplot, in the one
palette of :mod:`cartokit.plot._style`: the static data map and its per-class grid
(:mod:`.maps`), training trajectories (:mod:`.trajectories`)."""

from cartokit.plot._style import SAVE_FORMATS
from cartokit.plot.maps import plot_data_map, plot_data_map_by_class
from cartokit.plot.trajectories import plot_trajectories

__all__ = ["SAVE_FORMATS", "plot_data_map", "plot_data_map_by_class", "plot_trajectories"]
