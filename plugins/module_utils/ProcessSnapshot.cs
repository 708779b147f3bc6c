// Copyright: configmgr.sql_upgrade contributors
// GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
//
// The host's processes with their parent process ids, read without WMI: CreateToolhelp32Snapshot
// (TH32CS_SNAPPROCESS) and Process32First/Process32Next. System.Diagnostics.Process gives names and ids
// but no parent id (that needs Win32_Process, i.e. WMI, which is disabled in KB 256202's window).
// th32ParentProcessID is the creator's id at creation time and is never updated: the caller compares
// creation times before calling a process a child of a running one (see plugin_utils/_service_window/processes.py: parent_services).
using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Runtime.InteropServices;

//TypeAccelerator -Name ConfigMgr.SqlUpgrade.ProcessEntry -TypeName ProcessEntry
//TypeAccelerator -Name ConfigMgr.SqlUpgrade.ProcessSnapshot -TypeName ProcessSnapshot

namespace ansible_collections.configmgr.sql_upgrade.plugins.module_utils.ProcessSnapshot
{
    public class ProcessEntry
    {
        public int ProcessId;
        public int ParentProcessId;
        public string ExeFile;
    }

    public static class ProcessSnapshot
    {
        private const uint TH32CS_SNAPPROCESS = 0x00000002;
        private const int ERROR_NO_MORE_FILES = 18;
        private static readonly IntPtr INVALID_HANDLE_VALUE = new IntPtr(-1);

        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        private struct PROCESSENTRY32W
        {
            public uint dwSize;
            public uint cntUsage;
            public uint th32ProcessID;
            public IntPtr th32DefaultHeapID;
            public uint th32ModuleID;
            public uint cntThreads;
            public uint th32ParentProcessID;
            public int pcPriClassBase;
            public uint dwFlags;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 260)]
            public string szExeFile;
        }

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern IntPtr CreateToolhelp32Snapshot(uint dwFlags, uint th32ProcessID);

        [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern bool Process32FirstW(IntPtr hSnapshot, ref PROCESSENTRY32W lppe);

        [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern bool Process32NextW(IntPtr hSnapshot, ref PROCESSENTRY32W lppe);

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern bool CloseHandle(IntPtr hObject);

        public static List<ProcessEntry> Get()
        {
            IntPtr snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
            if (snap == INVALID_HANDLE_VALUE)
                throw new Win32Exception(Marshal.GetLastWin32Error(), "CreateToolhelp32Snapshot failed");
            List<ProcessEntry> result = new List<ProcessEntry>();
            try
            {
                PROCESSENTRY32W entry = new PROCESSENTRY32W();
                entry.dwSize = (uint)Marshal.SizeOf(typeof(PROCESSENTRY32W));
                bool ok = Process32FirstW(snap, ref entry);
                while (ok)
                {
                    result.Add(new ProcessEntry
                    {
                        ProcessId = (int)entry.th32ProcessID,
                        ParentProcessId = (int)entry.th32ParentProcessID,
                        ExeFile = entry.szExeFile,
                    });
                    ok = Process32NextW(snap, ref entry);
                }
                int err = Marshal.GetLastWin32Error();
                if (err != ERROR_NO_MORE_FILES)
                    throw new Win32Exception(err, "Process32Next failed");
            }
            finally
            {
                CloseHandle(snap);
            }
            return result;
        }
    }
}
