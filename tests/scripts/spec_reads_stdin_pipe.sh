# covers: as spec_reads_stdin, with stdin a pipe
# stdin-pipe: yes
# stdin: alpha
# stdin: beta
sleep 0.3
cat
echo "after"
