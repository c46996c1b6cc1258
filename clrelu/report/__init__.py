"""What reads many runs: loading them into pandas, comparing, plotting."""
