# covers: external file operations: mkdir -p, cp, mv, rm, ln -s (dangling too), chmod, truncate, symlink dirs
mkdir -p tree/sub/deep
echo one > tree/one.txt
cp tree/one.txt tree/sub/copy.txt
mv tree/one.txt tree/moved.txt
ln -s moved.txt tree/link
ln -s ../nowhere tree/sub/dangling
ln -s sub tree/dirlink
chmod 600 tree/moved.txt
chmod 755 tree/sub/copy.txt
chmod 711 tree/sub/deep
printf 'abc' > tree/sub/deep/f
truncate -s 10 tree/sub/deep/f
rm tree/sub/copy.txt
touch tree/dirlink/through-link
mkfifo tree/fifo
find tree | sort
od -c tree/sub/deep/f
