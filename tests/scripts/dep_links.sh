# covers: writes through hard links and symlinks seen by later readers of the other name
/bin/echo base > target
ln target hard
ln -s target soft
/bin/echo more >> hard
cat target
/bin/echo replaced > soft
cat hard
rm target
cat hard
cat soft 2>&1 | sed 's/^cat: //'
stat -c '%h' hard
