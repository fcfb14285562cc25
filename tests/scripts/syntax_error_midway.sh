# covers: a syntax error after some valid lines: earlier lines run, bash's message, exit status 2
echo before > before.txt
echo before
if then fi
echo never
