# covers: failing redirections: missing input file, missing dir, writing to a directory, bad fd
cat < missing.txt
echo "status $?"
echo x > no/such/dir/file
echo "status $?"
mkdir adir
echo y > adir
echo "status $?"
echo z >&9
echo "status $?"
{ echo in-group; } < missing2.txt
echo "group status $?"
