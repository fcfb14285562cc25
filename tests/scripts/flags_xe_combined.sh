# covers: combined single-letter flags (-xe): trace on stderr and exit on the first failure
# flags: -xe
x=1
/bin/echo "x=$x"
ls missing-file
echo never
