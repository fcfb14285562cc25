# covers: units that read the script's stdin, speculated while the shell sleeps (their runs must not be committed: a run's stdin is not the script's)
# stdin: line one
# stdin: line two
# stdin: line three
sleep 0.3
head -n 1
echo "status $?"
sleep 0.2
cat | tr a-z A-Z
wc -l < /dev/null
