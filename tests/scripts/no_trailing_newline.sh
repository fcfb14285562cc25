# covers: a script whose last line has no trailing newline
echo first
echo last-line