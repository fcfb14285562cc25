# covers: -n on a script with a syntax error: bash's message and status 2, nothing run
# flags: -n
touch must-not-exist
if true; then
    echo "missing fi"
