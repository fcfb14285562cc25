# covers: directory listings (ls, glob, find) after entries are created, renamed and removed by earlier commands
touch a
ls
touch b c
ls
mv b d
ls
rm a
echo *
mkdir sub; touch sub/x
find . | sort
rmdir sub 2>/dev/null || rm -r sub
ls
