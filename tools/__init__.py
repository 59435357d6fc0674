"""Developer tools run from a clone (``python tools/<name>.py``), not part of the installed
package: ``local_slurm`` installs system packages and starts daemons."""
