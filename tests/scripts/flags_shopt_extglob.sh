# covers: -O extglob at invocation: extglob patterns parse from the first line; -- ends the options
# flags: -O extglob --
# args: -x
# setup: touch a.txt b.log c.txt
echo "first arg: $1"
echo !(*.txt)
ls @(a|b).*
shopt extglob
